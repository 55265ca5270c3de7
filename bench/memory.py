"""Peak memory of `soundtag predict` and `soundtag tag` on single long or wide files: the audio must never be held
whole (target: peak RSS at most 1 GB for any single file).

    python bench/memory.py [--hours 2] [--long-hours 10] [--cases "10 h"]

Each file holds a 440 Hz tone at -20 dBFS (so that every window goes through the model): a long FLAC at 44.1 kHz
stereo, the same length as AAC in .m4a (the ffmpeg path), and short files that are large once decoded (many
channels, high rates: what streaming decided by length, not decoded size, held whole before 0.5): 2 minutes and
50 s of 8 channels at 384 kHz (FLAC), 20 s of 64 channels at 96 kHz, 10 s of 255 channels at 48 kHz (the most a
WAV header may state for soundtag) and a minute at 768 kHz (WAV). Each command runs in a fresh process; its peak
resident set size comes from the kernel (getrusage of the child). A 10-hour FLAC (mono, 16 kHz) is the long end.
`--cases` runs only the files whose name holds that text and keeps the other rows of results/bench/memory.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, report

CLI = [sys.executable, "-m", "soundtag.interfaces.cli"]


def make(path: Path, seconds: float, rate: int, channels: int) -> Path:
    if channels > 8:  # beyond ffmpeg's channel layouts: written a second at a time with soundfile
        import numpy as np
        import soundfile as sf

        second = (0.1 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
        with sf.SoundFile(path, "w", rate, channels, "PCM_16") as out:
            for _ in range(round(seconds)):
                out.write(np.repeat(second[:, None], channels, axis=1))
        return path
    tone = f"sine=frequency=440:sample_rate={rate}:duration={seconds}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", tone, "-af", "volume=0.1",
                    "-ac", str(channels), str(path)], check=True)
    return path


def peak_rss(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of `cmd` run to completion in a child process of its own."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
             "stderr=subprocess.DEVNULL, check=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    began = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True).stdout
    return int(out.strip()) / 1024, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0, help="length of the long stereo files (default: 2)")
    parser.add_argument("--long-hours", type=float, default=10.0, help="length of the longest file (default: 10)")
    parser.add_argument("--cases", default="", help="only the files whose name holds this text")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        recipes = {f"{args.hours:g} h FLAC 44.1 kHz stereo": ("long.flac", args.hours * 3600, 44100, 2),
                   f"{args.hours:g} h AAC .m4a 44.1 kHz stereo": ("long.m4a", args.hours * 3600, 44100, 2),
                   "2 min FLAC 8 ch 384 kHz": ("wide.flac", 120, 384000, 8),
                   "50 s FLAC 8 ch 384 kHz": ("wide50.flac", 50, 384000, 8),
                   "20 s WAV 64 ch 96 kHz": ("ch64.wav", 20, 96000, 64),
                   "10 s WAV 255 ch 48 kHz": ("ch255.wav", 10, 48000, 255),
                   "1 min WAV mono 768 kHz": ("fast.wav", 60, 768000, 1),
                   f"{args.long_hours:g} h FLAC mono 16 kHz": ("longest.flac", args.long_hours * 3600, 16000, 1)}
        files = {name: make(tmp / file, *spec) for name, (file, *spec) in recipes.items() if args.cases in name}
        baseline, _ = peak_rss([*CLI, "--version"])  # the interpreter alone
        for name, path in files.items():
            for command in (["predict", str(path), "--json"], ["tag", str(path), "--db", str(tmp / f"{path.stem}.db")]):
                mb, seconds = peak_rss([*CLI, *command])
                rows.append({"file": name, "size_mb": round(path.stat().st_size / 1e6, 1), "command": command[0],
                             "peak_rss_mb": round(mb), "seconds": round(seconds, 1)})
                print(rows[-1], flush=True)
    old = json.loads((RESULTS / "memory.json").read_text())["rows"] if args.cases else []
    rows = [r for r in old if r["file"] not in {x["file"] for x in rows}] + rows
    report("memory", rows, f"Peak resident memory of one `soundtag` process per row (torch and the model included; "
           f"`soundtag --version` alone peaks at {baseline:.0f} MB), on a 2-core CPU. Files hold a 440 Hz tone at "
           "-20 dBFS. Target: at most 1,000 MB for any single file.")


if __name__ == "__main__":
    main()
