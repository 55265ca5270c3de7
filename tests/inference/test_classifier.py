import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tiny_bundle, tone

from soundtag.audio.load import AudioError
from soundtag.errors import ConfigError
from soundtag.inference.classifier import SILENCE, Classifier
from soundtag.models.cnn import save_model
from soundtag.training.calibrate import fit_ood

CLASSES = ["bell", "hum", "rain"]


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(tiny_bundle(CLASSES))


def check_tags(tags: list[dict], k: int) -> None:
    assert len(tags) == k and {t["label"] for t in tags} <= set(CLASSES)
    scores = [t["score"] for t in tags]
    assert scores == sorted(scores, reverse=True) and all(0 <= x <= 1 for x in scores)


@pytest.mark.parametrize("sr", [8000, 16000, 44100, 96000])
def test_files_at_any_rate(clf: Classifier, tmp_path: Path, sr: int) -> None:
    path = tmp_path / "x.wav"
    sf.write(path, tone(440.0, sr, 5.0), sr)
    check_tags(clf.predict(path, top_k=2), 2)


@pytest.mark.parametrize("make", [
    lambda x: x, lambda x: (x * 32767).astype(np.int16), lambda x: np.stack([x, x], 1), lambda x: np.stack([x, x]),
    lambda x: x.astype(np.float64),
])
def test_arrays(clf: Classifier, make) -> None:
    check_tags(clf.predict(make(tone(440.0, 22050, 5.0)), sample_rate=22050, top_k=3), 3)


def test_same_audio_same_answer_as_file_or_array(clf: Classifier, tmp_path: Path) -> None:
    x = tone(880.0, 32000, 5.0) + 0.01 * np.random.default_rng(0).standard_normal(160000).astype(np.float32)
    sf.write(tmp_path / "x.wav", x, 32000, subtype="FLOAT")
    assert clf.predict(tmp_path / "x.wav") == clf.predict(x, sample_rate=32000)


def test_long_audio_windows_and_aggregation(clf: Classifier) -> None:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(12 * 32000)).astype(np.float32)
    result = clf.analyze(x, sample_rate=32000, top_k=3)
    assert [(w.start, w.end) for w in result.windows] == [(0.0, 5.0), (2.5, 7.5), (5.0, 10.0), (7.0, 12.0)]
    assert result.duration == 12.0 and not result.silent
    per_window = np.array([[{t["label"]: t["score"] for t in w.tags}[c] for c in CLASSES] for w in result.windows])
    overall = {t["label"]: t["score"] for t in result.tags}
    np.testing.assert_allclose([overall[c] for c in CLASSES], per_window.max(0), rtol=1e-6)  # presence
    mean = {t["label"]: t["score"] for t in Classifier(clf.bundle, aggregate="mean").analyze(x, 32000, 3).tags}
    np.testing.assert_allclose([mean[c] for c in CLASSES], per_window.mean(0), rtol=1e-5)


class LoudnessModel(Classifier):
    """A stand-in model that hears "bell" in proportion to a window's level: the plumbing, not the network."""

    def __init__(self, **kwargs: object):
        super().__init__(tiny_bundle(CLASSES), threshold=0.5, **kwargs)
        self._run = self.loudness

    @staticmethod
    def loudness(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        level = np.sqrt((windows.astype(np.float64) ** 2).mean(1))
        scores = np.zeros((len(windows), len(CLASSES)), np.float32)
        scores[:, 0] = np.clip(level / 0.2, 0, 1)
        return scores, np.zeros((len(windows), 16), np.float32)


def test_a_short_event_in_a_long_file_keeps_its_score_and_time() -> None:
    rate = 32000
    wave = np.random.default_rng(0).normal(0, 0.01, 60 * rate).astype(np.float32)  # a minute of quiet hiss
    wave[30 * rate:35 * rate] += tone(440.0, rate, 5.0, amp=0.3)  # the bell: 30-35 s
    result = LoudnessModel().analyze(wave, rate)
    assert result.tags[0] == {"label": "bell", "score": pytest.approx(1.0)}  # a mean would give about 0.15
    assert [(e["label"], e["start"], e["end"]) for e in result.events] == [("bell", 27.5, 37.5)]
    assert result.events[0]["score"] == pytest.approx(1.0)


def test_events_split_where_the_sound_stops() -> None:
    rate = 8000
    wave = np.zeros(40 * rate, np.float32) + 1e-3
    for start in (0, 30):
        wave[start * rate:(start + 5) * rate] = tone(300.0, rate, 5.0, amp=0.3)
    events = LoudnessModel().analyze(wave, rate).events
    assert [(e["start"], e["end"]) for e in events] == [(0.0, 7.5), (27.5, 37.5)]  # half a window still hears it


def test_window_and_hop_are_configurable(clf: Classifier) -> None:
    other = Classifier(clf.bundle, window=2.0, hop=1.0)
    starts = [w.start for w in other.analyze(np.ones(5 * 8000) * 0.1, sample_rate=8000).windows]
    assert starts == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(ConfigError, match="0 < hop <= window"):
        Classifier(clf.bundle, hop=0)
    assert Classifier(clf.bundle, window=2.0).config.hop == 1.0  # a new window keeps the overlap (half)


@pytest.mark.parametrize(("seconds", "starts"),
                         [(5.016, [0.0]), (10.016, [0.0, 2.5, 5.0]), (10.5, [0.0, 2.5, 5.0, 5.5])])
def test_encoder_padding_gets_no_window_of_its_own(clf: Classifier, seconds: float, starts: list) -> None:
    """An M4A of a 5.000-s clip decodes to 5.016 s (AAC priming): one window, not two that look the same."""
    result = clf.analyze(tone(440.0, 16000, seconds), sample_rate=16000)
    assert [w.start for w in result.windows] == starts
    assert result.windows[-1].end == pytest.approx(min(starts[-1] + 5.0, seconds), abs=1e-3)


def test_short_audio_is_one_padded_window(clf: Classifier) -> None:
    result = clf.analyze(tone(440.0, 16000, 1.0), sample_rate=16000)
    assert [(w.start, w.end) for w in result.windows] == [(0.0, 1.0)]


def test_silence_gate_measures_the_audio_not_the_padding(clf: Classifier) -> None:
    noise = np.random.default_rng(0).normal(0, 10 ** (-56 / 20), 5 * 32000).astype(np.float32)  # -56 dBFS
    assert not clf.analyze(noise[:32000], 32000).silent  # padded to 5 s it would measure -63 dBFS
    assert not clf.analyze(noise, 32000).silent
    assert clf.analyze(noise[:32000] * 0.1, 32000).silent  # -76 dBFS, below the -60 dBFS gate


def test_silence_is_reported_not_labelled(clf: Classifier) -> None:
    quiet = clf.analyze(np.zeros(32000 * 5), sample_rate=32000)
    assert quiet.silent and quiet.tags == [{"label": SILENCE, "score": 1.0}]
    hiss = np.random.default_rng(0).standard_normal(32000 * 10) * 1e-5  # -100 dBFS
    hiss[32000 * 5:] += tone(440.0, 32000, 5.0)
    mixed = clf.analyze(hiss, sample_rate=32000)
    assert [w.silent for w in mixed.windows] == [True, False, False] and not mixed.silent
    assert mixed.tags[0]["label"] in CLASSES


def test_batch_keeps_going_past_a_bad_file(clf: Classifier, tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    sf.write(good, tone(440.0, 16000, 3.0), 16000)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    results = clf.predict_batch([good, bad, tone(440.0, 16000, 7.0)], sample_rate=16000)
    assert isinstance(results[1], AudioError) and "bad.wav" in str(results[1])
    check_tags(results[0], 3)
    check_tags(results[2], 3)
    assert results[0] == clf.predict(good)
    with pytest.raises(AudioError, match=r"bad\.wav"):
        clf.predict(bad)


def test_embedding(clf: Classifier) -> None:
    vec = clf.embed(tone(440.0, 16000, 8.0), sample_rate=16000)
    assert vec.shape == (16,) and vec.dtype == np.float32


def test_load_a_saved_model(clf: Classifier, tmp_path: Path) -> None:
    save_model(tmp_path / "m", clf.bundle)
    x = tone(440.0, 16000, 2.0)
    assert Classifier.load(tmp_path / "m").predict(x, sample_rate=16000) == clf.predict(x, sample_rate=16000)
    with pytest.raises(FileNotFoundError, match=r"model\.json"):
        Classifier.load(tmp_path / "missing")


def test_ood_distance_is_saved_with_the_model_and_grows_away_from_training(tmp_path: Path) -> None:
    bundle = tiny_bundle(CLASSES)
    save_model(tmp_path, bundle)
    rng = np.random.default_rng(0)
    training = rng.normal(size=(500, 16))
    fit_ood(training, threshold=5.0, folder=tmp_path)
    clf = Classifier.load(tmp_path)
    assert float(clf.ood_stats["threshold"]) == 5.0
    near, far = clf.ood(training[:50]), clf.ood(training[:50] + 3.0)
    assert np.median(near) == pytest.approx(4.0, rel=0.15)  # sqrt(16 dimensions) for unit Gaussians
    assert (far > near).all()
    assert np.isfinite(clf.analyze(tone(440.0, 16000, 5.0), 16000).ood)
    assert np.isnan(Classifier(bundle).analyze(tone(440.0, 16000, 5.0), 16000).ood)  # no statistics saved
    with pytest.raises(ValueError, match="soundtag calibrate"):
        Classifier(bundle).ood(training[:1])


def test_long_audio_is_windowed_without_copying_it(clf: Classifier) -> None:
    """Ten minutes: 239 overlapping windows hold twice the audio; only one batch of them is ever copied."""
    wave = np.random.default_rng(0).normal(0, 0.1, 32000 * 600).astype(np.float32)
    tracemalloc.start()
    result = clf.analyze(wave, 32000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(result.windows) == 239 and result.windows[-1].end == 600.0
    assert peak < wave.nbytes  # measured: 0.53x (a batch of 64 windows); stacking every window took 2x


def test_device_is_cuda_when_present_else_cpu_and_checked() -> None:
    bundle = tiny_bundle(CLASSES)
    clf = Classifier(bundle)
    assert clf.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            Classifier(bundle, device="cuda")
        return
    clip = tone(440.0, 16000, 5.0)
    on_cpu, on_gpu = Classifier(bundle, device="cpu"), Classifier(bundle, device="cuda")
    np.testing.assert_allclose(on_gpu.analyze(clip, 16000).embedding, on_cpu.analyze(clip, 16000).embedding,
                               atol=1e-3)


def test_a_long_file_is_streamed_to_the_same_answer(clf: Classifier, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Files that decode to more than STREAM_ABOVE bytes are decoded, resampled and scored a block at a time; the
    result is the same."""
    import soundfile as sf

    from soundtag.audio import load as audio
    from soundtag.inference import classifier as infer

    rng = np.random.default_rng(0)
    take = np.concatenate([tone(440.0, 44100, 7.0), 0.1 * rng.standard_normal(44100 * 6), np.zeros(44100 * 5)])
    sf.write(tmp_path / "take.flac", take.astype(np.float32), 44100)
    whole = clf.analyze(audio.load(tmp_path / "take.flac", target_rate=clf.sample_rate), clf.sample_rate)
    monkeypatch.setattr(infer, "STREAM_ABOVE", 10 * 32_000 * 4)  # 10 s at 32 kHz
    monkeypatch.setattr(infer, "load_blocks", lambda path, rate: audio.load_blocks(path, rate, samples=57_000))
    streamed = clf.analyze(tmp_path / "take.flac")
    assert streamed.duration == pytest.approx(whole.duration) and streamed.events == whole.events
    assert [(w.start, w.end, w.silent) for w in streamed.windows] == [(w.start, w.end, w.silent) for w in whole.windows]
    for a, b in zip(streamed.windows, whole.windows):
        assert [t["label"] for t in a.tags] == [t["label"] for t in b.tags]
        np.testing.assert_allclose([t["score"] for t in a.tags], [t["score"] for t in b.tags], atol=1e-5)
    np.testing.assert_allclose(streamed.embedding, whole.embedding, atol=1e-5)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("ood.safetensors", b"garbage", "ood.safetensors: unreadable"),
    ("model.onnx", b"\x08\x07garbage", "model.onnx: not a loadable ONNX model"),
])
def test_a_tampered_companion_file_is_one_model_error(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    from soundtag.errors import ModelError
    from soundtag.models.cnn import save_model

    save_model(tmp_path, tiny_bundle(CLASSES))
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelError, match=message):
        Classifier.load(tmp_path, backend="onnx" if name.endswith(".onnx") else "torch")


def test_a_decompression_bomb_is_streamed_in_bounded_memory(clf: Classifier, tmp_path: Path) -> None:
    """An hour of silence is a few kB of FLAC and 460 MB of samples at the model's rate: the memory an analysis
    holds must not grow with the length of the file."""
    import tracemalloc

    import soundfile as sf

    def peak_for(minutes: int) -> float:
        path = tmp_path / f"bomb{minutes}.flac"
        with sf.SoundFile(path, "w", 8000, 1) as f:
            for _ in range(minutes):
                f.write(np.zeros(8000 * 60, np.float32))
        assert path.stat().st_size < 1_000_000
        tracemalloc.start()
        result = clf.analyze(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert result.duration == pytest.approx(60.0 * minutes) and result.silent
        return peak

    short, long = peak_for(20), peak_for(60)
    assert long < 1.25 * short and long < 200e6, f"{short / 1e6:.0f} MB for 20 min, {long / 1e6:.0f} MB for 60"


def test_a_large_array_is_analysed_in_blocks_without_a_whole_copy(clf: Classifier, monkeypatch: pytest.MonkeyPatch
                                                                     ) -> None:
    """An array above STREAM_ABOVE (here float64 stereo, channels first) goes through views of itself a block at a
    time; the answer is the one of the whole array converted at once."""
    from soundtag.audio import load as audio
    from soundtag.inference import classifier as infer

    rng = np.random.default_rng(2)
    mono = np.concatenate([tone(440.0, 22050, 6.0), 0.1 * rng.standard_normal(22050 * 6)]).astype(np.float64)
    stereo = np.stack([mono, mono])  # (2, samples)
    whole = clf.analyze(stereo, 22050)
    monkeypatch.setattr(infer, "STREAM_ABOVE", 2 * 32_000 * 4)  # 2 s at 32 kHz
    converted = []
    real_blocks = audio.array_blocks
    monkeypatch.setattr(infer, "array_blocks", lambda a, sr: (converted.append(b.shape) or (b, r)
                                                              for b, r in real_blocks(a, sr, samples=40_000)))
    streamed = clf.analyze(stereo, 22050)
    assert converted and max(n for n, _ in converted) <= 20_000 and all(c == 2 for _, c in converted)
    assert [(w.start, w.silent) for w in streamed.windows] == [(w.start, w.silent) for w in whole.windows]
    for a, b in zip(streamed.windows, whole.windows):
        np.testing.assert_allclose([t["score"] for t in a.tags], [t["score"] for t in b.tags], atol=1e-4)


def test_array_blocks_are_channels_last_views_even_when_the_last_is_short() -> None:
    from soundtag.audio.load import array_blocks, prepare_blocks

    wide = np.zeros((255, 1000), np.float32)
    wide[:, 990:] = 0.5  # the last 10 frames
    blocks = list(array_blocks(wide, 16000, samples=255 * 330))
    assert [b.shape for b, _ in blocks] == [(330, 255), (330, 255), (330, 255), (10, 255)]
    assert all(np.shares_memory(b, wide) for b, _ in blocks)
    mono = np.concatenate(list(prepare_blocks(blocks, 16000)))
    assert mono.shape == (1000,) and np.allclose(mono[990:], 0.5) and not mono[:990].any()
