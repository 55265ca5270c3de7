import numpy as np
import pytest
from conftest import tone

from soundtag.features.logmel import FrontendConfig, LogMel
from soundtag.interfaces.timeline import timeline_figure


def test_timeline_figure_spans_the_whole_recording() -> None:
    wave = np.concatenate([np.zeros(32000 * 100, np.float32), tone(8000.0, 32000, 20.0)])  # 2 minutes
    events = [{"label": "bell", "start": 97.5, "end": 120.0, "score": 0.9}]
    spec, rows = timeline_figure(LogMel(FrontendConfig()), wave, events).axes
    assert spec.get_ylabel() == "Hz" and rows.get_xlabel() == "seconds"
    assert rows.get_xlim() == (0.0, 120.0) and spec.images[0].get_extent()[1] == pytest.approx(120.0)
    assert [t.get_text() for t in rows.get_yticklabels()] == ["bell"]
    mel = spec.images[0].get_array()
    assert mel.shape[1] <= 2000  # long audio is averaged down, not cut
    late = mel[:, mel.shape[1] * 9 // 10:]
    assert late.max() > mel[:, : mel.shape[1] // 2].max() + 40  # the tone at the end, silence before
    assert late.mean(1).argmax() > mel.shape[0] // 2  # 8 kHz sits in the upper mel bands


def test_timeline_says_when_nothing_was_found() -> None:
    fig = timeline_figure(LogMel(FrontendConfig()), np.zeros(32000, np.float32), [])
    assert "no sound reached" in fig.axes[1].texts[0].get_text()


def test_blocks_draw_the_picture_of_the_whole() -> None:
    """A long file is drawn from its blocks as they are decoded (`predict --plots`): the same picture, near enough."""
    wave = np.concatenate([np.zeros(32000 * 50, np.float32), tone(3000.0, 32000, 30.0)])
    frontend = LogMel(FrontendConfig())
    whole = np.asarray(timeline_figure(frontend, wave, []).axes[0].images[0].get_array())
    blocks = [wave[i:i + 700_000] for i in range(0, len(wave), 700_000)]
    pieces = np.asarray(timeline_figure(frontend, iter(blocks), [], seconds=80.0).axes[0].images[0].get_array())
    assert abs(pieces.shape[1] - whole.shape[1]) <= len(blocks)  # a frame more where each block starts
    assert np.median(np.abs(pieces[:, :whole.shape[1] - 10] - whole[:, :whole.shape[1] - 10])) < 1.0  # dB


def test_blocks_without_their_length_are_refused() -> None:
    with pytest.raises(ValueError, match="pass seconds"):
        timeline_figure(LogMel(FrontendConfig()), iter([np.zeros(32_000, np.float32)]), [])
