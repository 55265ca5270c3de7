"""Training examples as users record them: mixtures of clips and real recording conditions, on whole batches.

Everything acts on mel *power* spectrograms `(batch, n_mels, frames)` before the log, where sounds add: a mixture is
a sum, noise is added at a signal-to-noise ratio, and a microphone or a band limit is a gain per mel band. These
are the power-domain counterparts of what happens to a waveform (the cross terms between independent sources
average out within a mel band), so the log-mel cache stays valid and the conditions cost little per batch. A room
is the exception: its early reflections colour a sound through phase, which mel power does not hold (a power-domain
reverb was tried and left the benchmark's rooms as hard as before), so reverberant copies of every clip are made
once, as waveforms, in the cache (`training.rooms`). `bench/robustness.py` checks all of it against the real thing:
waveforms resampled, reverberated in geometric rooms, MP3-coded and mixed.

The targets are multi-label: a mixture is labelled with every clip in it, weighted down to 0 for a clip 10 to 20 dB
below the loudest (barely audible), and an event moved mostly out of the window keeps the share of its energy left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from soundtag.features.logmel import LogMel

NYQUISTS_HZ = (4_000.0, 5_512.5, 8_000.0, 11_025.0)  # of 8, 11.025, 16 and 22.05 kHz recordings
INAUDIBLE_DB = 20.0  # a source this far below the loudest in a mixture is no longer a target; 10 dB is fully one
WHITE_NOISE_SEED = 12_345


@dataclass(frozen=True)
class AugmentConfig:
    """Each condition's probability per training example (0 turns it off) and its range."""

    mix: float = 0.6  # a mixture of this clip and one or two other training clips
    mix_three: float = 0.3  # of the mixtures, the share with three clips
    mix_db: float = 10.0  # level of each added clip relative to the first, uniform in +-mix_db (whole-clip power)
    context: float = 0.2  # the clip moved up to 60 % out of the window (no wrap-around) over steady noise
    reverb: float = 0.3  # heard in a room: one of the clip's reverberant copies in the cache (every source of a mix)
    rooms: int = 2  # reverberant copies of each clip in the cache, each in a room of its own (soundtag.training.rooms)
    noise: float = 0.4  # white, pink or brown noise at snr_db_min to 30 dB SNR
    snr_db_min: float = -10.0  # 0.3's -5 lost 13.7 points on the 0-dB-SNR benchmark against clean; -10 loses 9.6
    noise_swing_db: float = 8.0  # the noise's level wanders by up to +-this many dB over 0.2-2 s (real background)
    floor: float = 0.4  # otherwise, a noise floor 30 to 60 dB down: real recordings are never digitally silent
    eq: float = 0.3  # device colouring: a random tilt and three bumps of up to +-eq_db
    eq_db: float = 6.0
    band_limit: float = 0.25  # everything above the Nyquist frequency of 8, 11.025, 16 or 22.05 kHz removed
    quiet: float = 0.15  # recorded at -60 to -35 dBFS over a noise floor at -100 to -85 dBFS
    background_only: float = 0.03  # the noise alone, every target 0: steady sound is not an event
    recorded: float = 0.0  # a device in a room: reverb, noise, eq and band_limit all at once (drawn independently,
    # the four meet in about 1 % of examples; a phone on a table has all four)
    time_shift: bool = True  # random circular shift along time of every clip
    freq_masks: int = 2  # SpecAugment masks per example (after the log) and their largest widths
    freq_mask_width: int = 8
    time_masks: int = 2
    time_mask_width: int = 50

    def __post_init__(self) -> None:
        for name in ("mix", "mix_three", "context", "reverb", "noise", "floor", "eq", "band_limit", "quiet",
                     "background_only", "recorded"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"a probability, must lie in [0, 1]; got {getattr(self, name)}")
        for name in ("mix_db", "noise_swing_db", "eq_db", "rooms", "freq_masks", "freq_mask_width", "time_masks",
                     "time_mask_width"):
            if not 0 <= getattr(self, name) < 1e4:
                raise ValueError(f"must be zero or positive (and finite); got {getattr(self, name)}")
        if not -30.0 <= self.snr_db_min <= 30.0:
            raise ValueError(f"must lie in [-30, 30] dB; got {self.snr_db_min}")


class Augmenter:
    """Builds training batches: `(log-mels (batch, n_mels, frames), targets (batch, classes))` from clean clips.

    `power` holds the mel power of every clip `(clips, n_mels, frames)`, `labels` their classes; mixture partners
    are drawn from `pool` (the training indices); `rooms` holds reverberant copies `(copies, clips, n_mels, frames)`
    (None: no reverberation). All randomness comes from the `rng` given to each call, so a resumed epoch repeats
    exactly.
    """

    def __init__(self, config: AugmentConfig, frontend: LogMel, power: torch.Tensor, labels: torch.Tensor,
                 pool: np.ndarray, n_classes: int, num_samples: int, rooms: torch.Tensor | None = None):
        self.cfg, self.frontend, self.power, self.labels, self.rooms = config, frontend, power, labels, rooms
        self.pool, self.n_classes = pool, n_classes
        self.noise, self.full_scale = noise_bank(frontend, num_samples)
        self.frame_s = frontend.config.hop_length / frontend.config.sample_rate
        weights = frontend.filterbank.T.double()  # (n_mels, fft bins)
        self.band_hz = (weights * fft_hz(frontend)).sum(1) / weights.sum(1)  # each band's centre of mass
        share = weights.cumsum(1) / weights.sum(1, keepdim=True)  # share of each band below each FFT bin
        self.below = {hz: share[:, int((fft_hz(frontend) < hz).sum()) - 1].float() for hz in NYQUISTS_HZ}

    def __call__(self, idx: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cfg
        b = len(idx)
        recorded = _chance(rng, b, c.recorded) if c.recorded else np.zeros(b, bool)  # no draw: 0.4's batches kept
        room = _chance(rng, b, c.reverb if self.rooms is not None else 0.0) | (recorded & (self.rooms is not None))
        x = self._clips(idx, room, rng)
        if c.time_shift:
            x = _roll(x, rng.integers(0, x.shape[-1], b))
        target = torch.zeros(b, self.n_classes)
        target[torch.arange(b), self.labels[idx]] = 1.0
        context = _chance(rng, b, c.context)
        x, kept = self._move_out(x, context, rng)
        target *= (2 * kept).clamp(max=1.0)[:, None]  # half the clip's energy left still counts as fully present
        x, target = self._mix(x, target, _chance(rng, b, c.mix), room, rng)
        only_noise = _chance(rng, b, c.background_only)
        x[only_noise] = 0.0
        target[only_noise] = 0.0
        noisy = _chance(rng, b, c.noise) | context | only_noise | recorded
        x = self._add_noise(x, noisy, ~noisy & _chance(rng, b, c.floor), only_noise, rng)
        x = x * self._eq(_chance(rng, b, c.eq) | recorded, rng)[..., None]
        x = x * self._band_limit(_chance(rng, b, c.band_limit) | recorded, rng)[..., None]
        x = self._quiet(x, _chance(rng, b, c.quiet), rng)
        return spec_augment(self.frontend.compress(x), c, rng), target

    def _clips(self, idx: np.ndarray, room: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Mel power of clips `idx`, those marked `room` from one of their reverberant copies."""
        x = self.power[idx].clone()
        if room.any():
            x[torch.from_numpy(room)] = self.rooms[rng.integers(0, len(self.rooms), room.sum()), idx[room]]
        return x

    def _move_out(self, x: torch.Tensor, which: np.ndarray, rng: np.random.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Shift the chosen clips by up to 60 % of the window, filling with nothing; returns the energy share kept."""
        frames = x.shape[-1]
        before = x.sum((1, 2))
        for i in np.flatnonzero(which):
            s = int(rng.integers(-int(0.6 * frames), int(0.6 * frames) + 1))
            x[i] = torch.roll(x[i], s, dims=-1)
            if s > 0:
                x[i, :, :s] = 0.0
            elif s < 0:
                x[i, :, s:] = 0.0
        return x, x.sum((1, 2)) / before.clamp_min(1e-20)

    def _mix(self, x: torch.Tensor, target: torch.Tensor, which: np.ndarray, room: np.ndarray,
             rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Add one or two random training clips at +-mix_db (in the same room as the first, if it is in one);
        every source is a target, the faint ones less so."""
        rows = torch.from_numpy(np.flatnonzero(which))
        if not len(rows):
            return x, target
        n = len(rows)
        first = _level_db(x[rows])
        levels, targets = [first], [target[rows]]
        for extra in range(2):
            present = torch.from_numpy(np.ones(n, bool) if extra == 0 else rng.random(n) < self.cfg.mix_three)
            pick = rng.choice(self.pool, n)
            partner = _roll(self._clips(pick, room[rows.numpy()], rng), rng.integers(0, x.shape[-1], n))
            db = first + torch.from_numpy(rng.uniform(-self.cfg.mix_db, self.cfg.mix_db, n)).float()
            gain = torch.where(present, 10 ** ((db - _level_db(partner)) / 10), 0.0)  # relative to the first clip
            x[rows] += gain[:, None, None] * partner
            onehot = torch.zeros(n, self.n_classes)
            onehot[torch.arange(n), self.labels[pick]] = 1.0
            levels.append(torch.where(present, db, -torch.inf))
            targets.append(onehot)
        levels = torch.stack(levels)  # (sources, n)
        audible = ((levels - levels.amax(0) + INAUDIBLE_DB) / (INAUDIBLE_DB / 2)).clamp(0.0, 1.0)
        target[rows] = (audible[..., None] * torch.stack(targets)).amax(0)
        return x, target

    def _add_noise(self, x: torch.Tensor, which: np.ndarray, floor: np.ndarray, alone: np.ndarray,
                   rng: np.random.Generator) -> torch.Tensor:
        """Coloured noise snr_db_min to 30 dB below the clip's power (`which`), or 30 to 60 dB below (`floor`);
        noise alone (`alone`, among `which`) at -70 to -20 dBFS."""
        rows = torch.from_numpy(np.flatnonzero(which | floor))
        if not len(rows):
            return x
        n = len(rows)
        noise = _roll(self.noise[rng.integers(0, len(self.noise), n)], rng.integers(0, x.shape[-1], n))
        quiet_floor = floor[rows.numpy()]
        noise = noise * swing(n, x.shape[-1], self.frame_s, self.cfg.noise_swing_db * ~quiet_floor, rng)[:, None]
        snr = torch.from_numpy(rng.uniform(np.where(quiet_floor, 30.0, self.cfg.snr_db_min),
                                           np.where(quiet_floor, 60.0, 30.0))).float()
        alone_db = torch.from_numpy(rng.uniform(-70.0, -20.0, n)).float() + self.full_scale
        db = torch.where(torch.from_numpy(alone[rows.numpy()]), alone_db, _level_db(x[rows]) - snr)
        x[rows] += 10 ** ((db - _level_db(noise)) / 10)[:, None, None] * noise
        return x

    def _eq(self, which: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Per-band power gains `(batch, n_mels)`: a tilt and three bumps of up to +-eq_db for the chosen clips."""
        b, bands = len(which), len(self.band_hz)
        top = self.cfg.eq_db
        pos = torch.linspace(-1.0, 1.0, bands)
        db = torch.from_numpy(rng.uniform(-top, top, (b, 1))).float() * pos
        centre = torch.from_numpy(rng.uniform(-1.0, 1.0, (b, 3, 1))).float()
        width = torch.from_numpy(rng.uniform(0.05, 0.3, (b, 3, 1))).float()
        height = torch.from_numpy(rng.uniform(-top, top, (b, 3, 1))).float()
        db = db + (height * torch.exp(-0.5 * ((pos - centre) / width) ** 2)).sum(1)
        return 10 ** (db.clamp(-2 * top, 2 * top) * torch.from_numpy(which)[:, None] / 10)

    def _band_limit(self, which: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Per-band power gains `(batch, n_mels)`: the share of each band below a random Nyquist frequency."""
        gains = torch.ones(len(which), len(self.band_hz))
        for i in np.flatnonzero(which):
            gains[i] = self.below[NYQUISTS_HZ[rng.integers(len(NYQUISTS_HZ))]]
        return gains

    def _quiet(self, x: torch.Tensor, which: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Bring the chosen clips to -60 to -35 dBFS and add white noise at -100 to -85 dBFS (a converter's floor)."""
        rows = torch.from_numpy(np.flatnonzero(which))
        if not len(rows):
            return x
        n = len(rows)
        dbfs = torch.from_numpy(rng.uniform(-60.0, -35.0, n)).float()
        x[rows] *= 10 ** ((dbfs - self.dbfs(x[rows])) / 10)[:, None, None]
        floor = torch.from_numpy(rng.uniform(-100.0, -85.0, n)).float()
        white = self.noise[rng.integers(0, len(self.noise) // 3, n)]  # the bank's first third is white
        x[rows] += 10 ** ((floor - self.dbfs(white)) / 10)[:, None, None] * white
        return x

    def dbfs(self, x: torch.Tensor) -> torch.Tensor:
        """Level `(batch,)` in dB relative to a full-scale white noise (RMS 1), from mel power."""
        return _level_db(x) - self.full_scale


def swing(n: int, frames: int, frame_s: float, depth_db: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Power gains `(n, frames)` of a level that wanders smoothly: random dB values every 0.2 to 2 s (one spacing
    per item), linearly joined, scaled to peak at up to `depth_db` `(n,)` dB (0: steady). Traffic, crowds and
    wind rise and fall: trained on steady noise only (0.2), the model lost 10.7 points to noise at 10 dB SNR whose
    level swings (bench/robustness.py); with these swings (0.3), 2.7."""
    db = torch.zeros(n, frames)
    for i in np.flatnonzero(depth_db > 0):
        step = max(1, int(rng.uniform(0.2, 2.0) / frame_s))
        knots = torch.from_numpy(rng.uniform(-1.0, 1.0, frames // step + 2)).float()
        curve = torch.nn.functional.interpolate(knots[None, None], scale_factor=step, mode="linear",
                                                align_corners=False)[0, 0]
        db[i] = curve[:frames] * float(rng.uniform(0.0, depth_db[i]))
    return 10 ** (db / 10)


def mix_at(first: torch.Tensor, second: torch.Tensor, db: torch.Tensor) -> torch.Tensor:
    """Mel power `(batch, mels, frames)` of `first` plus `second` with its whole-clip level `db` `(batch,)` dB
    relative to `first`'s (-inf adds nothing)."""
    gain = 10 ** ((_level_db(first) + db - _level_db(second)) / 10)
    return first + gain[:, None, None] * second


def fft_hz(frontend: LogMel) -> torch.Tensor:
    c = frontend.config
    return torch.linspace(0.0, c.sample_rate / 2, c.n_fft // 2 + 1, dtype=torch.float64)


def noise_bank(frontend: LogMel, num_samples: int, per_colour: int = 8) -> tuple[torch.Tensor, float]:
    """Mel power of white, pink and brown noise `(3 * per_colour, n_mels, frames)` (RMS 1 each, white first), and
    the level in dB of a full-scale white noise, the reference for dBFS."""
    gen = np.random.default_rng(WHITE_NOISE_SEED)
    freqs = np.fft.rfftfreq(num_samples, 1 / frontend.config.sample_rate)
    waves = []
    for exponent in (0.0, 1.0, 2.0):  # power falls as 1/f^exponent
        shape = np.maximum(freqs, 20.0) ** (-exponent / 2)
        for _ in range(per_colour):
            wave = np.fft.irfft(np.fft.rfft(gen.standard_normal(num_samples)) * shape, num_samples)
            waves.append(wave / np.sqrt(np.mean(wave ** 2)))
    with torch.no_grad():
        power = frontend.power_mel(torch.from_numpy(np.stack(waves)).float())
    return power, float(_level_db(power[:per_colour]).mean())


def spec_augment(x: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """SpecAugment masks on log-mels `(batch, mels, frames)`: masked bins are set to 0 (the normalised mean)."""
    b = x.shape[0]
    for dim, count, width in ((1, cfg.freq_masks, cfg.freq_mask_width), (2, cfg.time_masks, cfg.time_mask_width)):
        size = x.shape[dim]
        for _ in range(count):
            w = rng.integers(0, min(width, size) + 1, (b, 1))
            start = torch.from_numpy((rng.random((b, 1)) * (size - w + 1)).astype(np.int64)).to(x.device)
            pos = torch.arange(size, device=x.device).view(1, size)
            hit = (pos >= start) & (pos < start + torch.from_numpy(w).to(x.device))
            x = x.masked_fill(hit.unsqueeze(2) if dim == 1 else hit.unsqueeze(1), 0.0)
    return x


def _roll(x: torch.Tensor, shifts: np.ndarray) -> torch.Tensor:
    """Circular shift of each item `(batch, mels, frames)` along time by its own number of frames."""
    b, n_mels, frames = x.shape
    index = (torch.arange(frames).view(1, 1, frames) + torch.from_numpy(shifts).view(b, 1, 1)) % frames
    return x.gather(2, index.expand(b, n_mels, frames))


def _level_db(x: torch.Tensor) -> torch.Tensor:
    """Mean mel power of each item `(batch,)` in dB: the whole clip's level."""
    return 10 * torch.log10(x.mean((1, 2)).clamp_min(1e-20))


def _chance(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    return rng.random(n) < p
