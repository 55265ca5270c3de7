"""Accuracy under the conditions users record in: each cross-validation fold model tags its own held-out fold (400
clips, never trained on), clean and degraded *as waveforms*, through the Classifier as a user would call it.

Conditions (each clip, deterministic seeds):
  clean        the ESC-50 clip as released (32 kHz after resampling, as always)
  phone_8k     resampled to 8 kHz (soxr) and given to the classifier at 8 kHz: the telephone band
  rate_16k     resampled to 16 kHz
  room         convolved with a shoebox room impulse response (pyroomacoustics image source model; 12 rooms,
               RT60 0.3-0.9 s, source 1.5-4 m from the microphone), level kept
  noise_10db   + noise at 10 dB SNR (whole-clip RMS): pink noise with slow (0.3-2 Hz) level swings or brown noise
  noise_0db    the same at 0 dB SNR
  mp3_64k      encoded to 64 kbit/s MP3 with LAME (ffmpeg) and decoded
  quiet        scaled to -45 dBFS RMS and stored as 16-bit PCM
  in_30s       placed at a random time in 30 s of room tone (pink and brown noise at -55 dBFS); the *file* tags
               count (every 5-s window scored, the file's tags from the recipe's aggregate: mean or max)
  video_call   resampled to 16 kHz, encoded to 16 kbit/s Opus in VoIP mode (libopus, ffmpeg) and decoded at 16 kHz:
               the codec of a video call
  phone_room   the conditions together, as a phone on a table records: in a room (another of the 12), + noise at
               10 dB SNR, then resampled to 8 kHz
Score: top-1 accuracy of the file's tags over all 2,000 out-of-fold clips, and per condition the three classes
most often wrong ("worst", share wrong). The synthetic conditions used in
training (soundtag.training.augment) work on mel power; none of these waveform processes is used in training.

    python bench/robustness.py --cv results/esc50 --name multilabel
    python bench/robustness.py --cv runs/old --name single-label --aggregate mean

Rows of each --name are kept in results/bench/robustness.json, so recipes sit side by side.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from common import held_out_classifiers, load_waves, recipe_parser, report_recipe, worst_classes
from scipy.signal import fftconvolve

SR = 32_000


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f^exponent, RMS 1."""
    shape = np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0) ** (-exponent / 2)
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * shape, n)
    return x / rms(x)


def background(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink noise with slow level swings (+-6 dB at 0.3-2 Hz), or brown noise; RMS 1."""
    if rng.random() < 0.5:
        return coloured_noise(n, 2.0, rng)
    t = np.arange(n) / SR
    swing = 10 ** (6 * np.sin(2 * np.pi * rng.uniform(0.3, 2.0) * t + rng.uniform(0, 6.3)) / 20)
    x = coloured_noise(n, 1.0, rng) * swing
    return x / rms(x)


def room_impulses(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    import pyroomacoustics as pra

    rirs = []
    for _ in range(count):
        dim = rng.uniform([3.0, 3.0, 2.4], [9.0, 7.0, 3.5])
        absorption, order = pra.inverse_sabine(rng.uniform(0.3, 0.9), dim)
        room = pra.ShoeBox(dim, fs=SR, materials=pra.Material(absorption), max_order=min(order, 60))
        mic = rng.uniform([0.5, 0.5, 1.0], dim - [0.5, 0.5, 1.0])
        while True:  # a source 1.5-4 m away, inside the room
            source = mic + rng.normal(size=3) * np.array([1, 1, 0.2])
            source = mic + (source - mic) / np.linalg.norm(source - mic) * rng.uniform(1.5, 4.0)
            if np.all(source > 0.3) and np.all(source < dim - 0.3):
                break
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        rirs.append(np.asarray(room.rir[0][0], np.float64))
    return rirs


def coded(waves: np.ndarray, rate: int, suffix: str, encoder: list[str]) -> np.ndarray:
    """Encode the clips `(clips, samples)` at `rate`, one after another, as one file with ffmpeg's `encoder`
    arguments and decode it back at `rate` (ffmpeg trims the encoder delay)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("the coded conditions (mp3_64k, video_call) need ffmpeg")
    with tempfile.TemporaryDirectory() as tmp:
        wav, code, back = Path(tmp) / "in.wav", Path(tmp) / f"c.{suffix}", Path(tmp) / "out.wav"
        sf.write(wav, waves.reshape(-1), rate, subtype="FLOAT")
        for cmd in ([ffmpeg, "-v", "error", "-i", wav, *encoder, code],
                    [ffmpeg, "-v", "error", "-i", code, "-ar", str(rate), "-c:a", "pcm_f32le", back]):
            subprocess.run([str(c) for c in cmd], check=True)
        out, _ = sf.read(back, dtype="float32")
    out = np.pad(out, (0, max(0, waves.size - len(out))))[:waves.size]
    return out.reshape(waves.shape)


def in_room(w: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """The clip heard through a room impulse response, at its own RMS level."""
    wet = fftconvolve(w, rir)[:len(w)]
    return (wet * rms(w) / rms(wet)).astype(np.float32)


def with_noise(w: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    return (w + background(len(w), rng) * rms(w) * 10 ** (-snr_db / 20)).astype(np.float32)


def conditions(waves: np.ndarray, seed: int = 0) -> dict[str, tuple[list[np.ndarray], int]]:
    """Every condition's clips (arrays) and the rate they are handed to the classifier at."""
    rng = np.random.default_rng(seed)
    n = waves.shape[1]
    rirs = room_impulses(12, rng)
    out = {"clean": (list(waves), SR)}
    for name, rate in (("phone_8k", 8_000), ("rate_16k", 16_000)):
        out[name] = ([soxr.resample(w, SR, rate, quality="HQ") for w in waves], rate)
    out["room"] = ([in_room(w, rirs[i % len(rirs)]) for i, w in enumerate(waves)], SR)
    for snr in (10, 0):
        out[f"noise_{snr}db"] = ([with_noise(w, snr, rng) for w in waves], SR)
    out["mp3_64k"] = (list(coded(waves, SR, "mp3", ["-c:a", "libmp3lame", "-b:a", "64k"])), SR)
    out["quiet"] = ([np.round(w * (10 ** (-45 / 20) / rms(w)) * 32767).astype(np.int16) for w in waves], SR)
    tones = [coloured_noise(30 * SR, 1.0, rng) + coloured_noise(30 * SR, 2.0, rng) for _ in range(8)]
    long = []
    for w in waves:
        tone = np.roll(tones[rng.integers(len(tones))], rng.integers(30 * SR))
        tone *= 10 ** (-55 / 20) / rms(tone)
        at = int(rng.integers(0, 25 * SR))
        tone[at:at + n] += w
        long.append(tone.astype(np.float32))
    out["in_30s"] = (long, SR)
    wide = np.stack([soxr.resample(w, SR, 16_000, quality="HQ") for w in waves])
    out["video_call"] = (list(coded(wide, 16_000, "ogg", ["-c:a", "libopus", "-b:a", "16k", "-application", "voip"])),
                         16_000)
    out["phone_room"] = ([soxr.resample(with_noise(in_room(w, rirs[(i + 5) % len(rirs)]), 10, rng), SR, 8_000,
                                        quality="HQ") for i, w in enumerate(waves)], 8_000)
    return out


def main() -> None:
    parser = recipe_parser(__doc__)
    parser.add_argument("--aggregate", default="max", choices=("max", "mean"), help="file tags from windows")
    args = parser.parse_args()
    dataset, waves = load_waves(args.data)
    labels, folds = np.asarray(dataset.labels), np.asarray(dataset.folds)
    correct: dict[str, list[bool]] = {}
    done = []
    for k, clf, test in held_out_classifiers(args.cv, folds, args.folds, aggregate=args.aggregate):
        done.append(str(k))
        print(f"fold {k}: degrading {test.sum()} clips", flush=True)
        for name, (clips, rate) in conditions(waves[test], seed=k).items():
            results = clf.analyze_batch(clips, sample_rate=rate, top_k=1)
            best = [dataset.classes.index(r.tags[0]["label"]) if r.tags[0]["label"] in dataset.classes else -1
                    for r in results]
            correct.setdefault(name, []).extend(np.array(best) == labels[test])
    clean = float(np.mean(correct["clean"]))
    held_out = np.concatenate([labels[folds == int(k)] for k in done])
    rows = [{"recipe": args.name, "folds": ",".join(done), "condition": name, "accuracy": float(np.mean(hits)),
             "vs_clean": float(np.mean(hits)) - clean,
             "worst": worst_classes(dataset.classes, held_out, ~np.array(hits))} for name, hits in correct.items()]
    report_recipe("robustness", args.name, rows, " ".join(__doc__.split("\n\n")[:2]).replace("\n", " "))


if __name__ == "__main__":
    main()
