"""The picture of a tagged recording over its whole duration: its spectrogram (seconds across, Hz up, on the mel
scale) above its events (one row per sound, a bar where it is present, darker for a higher score)."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from soundtag.features import LogMel, hz_to_mel

MAX_COLUMNS = 2_000  # spectrogram frames drawn; longer audio is averaged down to this
CHUNK_SECONDS = 60.0  # audio turned into a spectrogram at a time, so hours of audio need little memory
HZ_TICKS = (100, 250, 500, 1_000, 2_000, 4_000, 8_000, 12_000)


def mel_image(frontend: LogMel, wave: np.ndarray) -> np.ndarray:
    """Mel power in dB `(n_mels, columns)` of the whole wave, at most MAX_COLUMNS columns."""
    c = frontend.config
    step = int(CHUNK_SECONDS * c.sample_rate)
    with torch.inference_mode():
        power = torch.cat([frontend.power_mel(torch.from_numpy(wave[i:i + step]))
                           for i in range(0, max(len(wave), 1), step)], dim=-1)
    pool = -(-power.shape[-1] // MAX_COLUMNS)
    if pool > 1:
        power = torch.nn.functional.avg_pool1d(power[None], pool, ceil_mode=True)[0]
    db = 10 * torch.log10(power.clamp_min(1e-10))
    return torch.maximum(db, db.max() - c.top_db).numpy()


def timeline_figure(frontend: LogMel, wave: np.ndarray, events: list[dict], title: str = "") -> Figure:
    """Spectrogram and event rows of `wave` (at the frontend's rate); `events` as in `Analysis.events`."""
    c = frontend.config
    seconds = len(wave) / c.sample_rate
    labels = sorted({e["label"] for e in events}, key=lambda x: min(e["start"] for e in events if e["label"] == x))
    fig = Figure(figsize=(10, 3.2 + 0.28 * max(len(labels), 1)))
    spec_ax, event_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, max(1, 0.35 * len(labels))])
    lo, hi = hz_to_mel(c.f_min), hz_to_mel(c.f_max)
    spec_ax.imshow(mel_image(frontend, wave), origin="lower", aspect="auto", cmap="magma",
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

