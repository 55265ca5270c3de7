"""The picture of a tagged recording over its whole duration: its spectrogram (seconds across, Hz up, on the mel
scale) above its events (one row per sound, a bar where it is present, darker for a higher score)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from matplotlib.figure import Figure

from soundtag.features.logmel import LogMel, hz_to_mel

MAX_COLUMNS = 2_000  # spectrogram frames drawn; longer audio is averaged down to this
CHUNK_SECONDS = 60.0  # audio turned into a spectrogram at a time, so hours of audio need little memory
HZ_TICKS = (100, 250, 500, 1_000, 2_000, 4_000, 8_000, 12_000)


def mel_image(frontend: LogMel, blocks: Iterable[np.ndarray], seconds: float) -> np.ndarray:
    """Mel power in dB `(n_mels, columns)` of audio `seconds` long that comes a block at a time, averaged down to at
    most about MAX_COLUMNS columns as it comes: hours of audio need little memory."""
    c = frontend.config
    pool = max(1, -(-c.num_frames(round(seconds * c.sample_rate)) // MAX_COLUMNS))
    step, columns, rest = int(CHUNK_SECONDS * c.sample_rate), [], torch.zeros(c.n_mels, 0)
    with torch.inference_mode():
        for block in blocks:
            for i in range(0, len(block), step):
                rest = torch.cat([rest, frontend.power_mel(torch.from_numpy(block[i:i + step]))], dim=-1)
                whole = rest.shape[-1] // pool * pool
                columns.append(rest[:, :whole].reshape(c.n_mels, -1, pool).mean(-1))
                rest = rest[:, whole:]
        if rest.shape[-1]:
            columns.append(rest.mean(-1, keepdim=True))
    power = torch.cat(columns, dim=-1) if columns else torch.zeros(c.n_mels, 1)
    db = 10 * torch.log10(power.clamp_min(1e-10))
    return torch.maximum(db, db.max() - c.top_db).numpy()


def timeline_figure(frontend: LogMel, audio: np.ndarray | Iterable[np.ndarray], events: list[dict], title: str = "",
                    seconds: float | None = None) -> Figure:
    """Spectrogram and event rows of `audio` at the frontend's rate: an array, or blocks of it (`load_blocks`) with
    their `seconds` in all; `events` as in `Analysis.events`."""
    c = frontend.config
    if isinstance(audio, np.ndarray):
        audio, seconds = [audio], len(audio) / c.sample_rate
    elif seconds is None:
        raise ValueError("audio given as blocks needs its length: pass seconds")
    labels = sorted({e["label"] for e in events}, key=lambda x: min(e["start"] for e in events if e["label"] == x))
    fig = Figure(figsize=(10, 3.2 + 0.28 * max(len(labels), 1)))
    spec_ax, event_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, max(1, 0.35 * len(labels))])
    lo, hi = hz_to_mel(c.f_min), hz_to_mel(c.f_max)
    spec_ax.imshow(mel_image(frontend, audio, seconds), origin="lower", aspect="auto", cmap="magma",
                   extent=(0, seconds, lo, hi))
    ticks = [hz for hz in HZ_TICKS if c.f_min <= hz <= c.f_max]
    spec_ax.set_yticks(hz_to_mel(np.array(ticks)), [f"{hz / 1000:g}k" if hz >= 1000 else str(hz) for hz in ticks])
    spec_ax.set(ylabel="Hz", title=title or f"{seconds:.1f} s")
    for e in events:
        row = labels.index(e["label"])
        event_ax.broken_barh([(e["start"], e["end"] - e["start"])], (row - 0.4, 0.8),
                             color="tab:blue", alpha=0.25 + 0.75 * e["score"])
    event_ax.set_yticks(range(len(labels)), labels)
    event_ax.set_ylim(-0.6, max(len(labels), 1) - 0.4)
    event_ax.invert_yaxis()
    event_ax.set_xlim(0, seconds)
    event_ax.set_xlabel("seconds")
    if not labels:
        event_ax.text(seconds / 2, 0, "no sound reached the decision threshold", ha="center", va="center")
    event_ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig

