"""Bounded load test of the web app on 127.0.0.1: 20 concurrent clients send 1,000 clips in all, then it stops.

    python bench/load_app.py [--model runs/esc50/fold1] [--clients 20] [--requests 1000] [--hostile 5]

The app runs in its own process (`soundtag app`); each client is a gradio_client uploading a 5-s ESC-50-like clip
to the `predict` endpoint. Records errors, latency p50/p99 and the server's resident memory over the run. With
--hostile N, every Nth upload is one of: 2 h of silence as FLAC (1 MB), an .m3u8 playlist naming a file on the
server and random bytes, which must be refused with a message (counted as `refused`), and 2 minutes of 8 channels at
384 kHz (heavy, but within the app's limits: it must be tagged); `errors` counts every other outcome.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from common import report
from gradio_client import Client, handle_file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 180) -> Client:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the app exited with code {proc.returncode}")
        try:
            return Client(url, verbose=False)
        except Exception:  # not listening yet
            time.sleep(1)
    sys.exit(f"the app did not answer at {url} within {seconds:.0f} s")


def hostile_files(folder: Path, secret: Path) -> list[tuple[Path, bool]]:
    """Uploads that must not cost the server more than a bounded amount of memory, each with whether the app must
    refuse it (never reading other files for it)."""
    def silence(name: str, seconds: int, rate: int, channels: int) -> Path:
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"anullsrc=r={rate}:cl=mono", "-t",
                        str(seconds), "-ac", str(channels), str(folder / name)], check=True)
        return folder / name

    playlist = folder / "playlist.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXTINF:5,\n{secret}\n#EXT-X-ENDLIST\n")
    garbage = folder / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    return [(silence("two_hours.flac", 7200, 44100, 1), True), (silence("wide.flac", 120, 384000, 8), False),
            (playlist, True), (garbage, True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--hostile", type=int, default=0, help="every Nth upload is hostile (default: none)")
    args = parser.parse_args()
    port = free_port()
    cmd = [sys.executable, "-m", "soundtag.interfaces.cli", "app", "--port", str(port)]
    cmd += ["--model", args.model] if args.model else []
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    url = f"http://127.0.0.1:{port}/"
    try:
        clients = [wait_for(url, server)] + [Client(url, verbose=False) for _ in range(args.clients - 1)]
        rng = np.random.default_rng(0)
        with tempfile.TemporaryDirectory() as tmp:
            clip = Path(tmp) / "clip.wav"
            sf.write(clip, (0.1 * rng.standard_normal(44100 * 5)).astype(np.float32), 44100, subtype="PCM_16")
            hostile = hostile_files(Path(tmp), clip) if args.hostile else []
            memory, done = [rss_mb(server.pid)], threading.Event()

            def sample_memory() -> None:
                while not done.wait(1.0):
                    memory.append(rss_mb(server.pid))

            sampler = threading.Thread(target=sample_memory, daemon=True)
            sampler.start()

            errors: list[str] = []
            refused = []

            def one(i: int) -> tuple[float, bool]:
                upload, refuse = clip, False
                if args.hostile and i % args.hostile == args.hostile - 1:
                    upload, refuse = hostile[(i // args.hostile) % len(hostile)]
                began = time.perf_counter()
                try:  # a refusal is the status line's message, the answer's first field
                    status = clients[i % args.clients].predict(handle_file(str(upload)), api_name="/predict")[0]
                except Exception as err:  # counted and reported, never raised: the run must finish
                    errors.append(f"{type(err).__name__}: {err}")
                    return time.perf_counter() - began, False
                if status.startswith("⚠️"):
                    (refused if refuse else errors).append(status)
                elif refuse:
                    errors.append(f"{upload.name} was tagged, not refused")
                return time.perf_counter() - began, status.startswith("⚠️") == refuse

            began = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                results = list(pool.map(one, range(args.requests)))
            wall = time.perf_counter() - began
            done.set()
            sampler.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = np.array([t for t, _ in results])
    for message in sorted(set(errors))[:5]:
        print("error:", message[:300], file=sys.stderr)
    third = max(1, len(memory) // 3)
    name = "load_app" + ("_hostile" if args.hostile else "" if args.requests == 1000 else f"_{args.requests}")
    report(name, [{
        "requests": args.requests, "clients": args.clients, "hostile_every": args.hostile, "refused": len(refused),
        "errors": sum(not ok for _, ok in results),
        "p50_ms": 1000 * float(np.percentile(latencies, 50)), "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "requests_s": args.requests / wall, "rss_start_mb": memory[0],
        "rss_first_third_mb": float(np.mean(memory[:third])), "rss_last_third_mb": float(np.mean(memory[-third:])),
        "rss_max_mb": max(memory),
        "rss_tenths_mb": [round(float(np.mean(part)), 1) for part in np.array_split(np.array(memory), 10)]}],
        "Gradio app (`soundtag app`, queue concurrency 2) on 127.0.0.1 with the CNN on CPU; clients and server share "
        "the machine's 2 cores. Latency is per request as a client sees it (upload, queue wait, tagging, result). "
        "Memory: the server's VmRSS sampled each second; 'memory flat' compares the first and last thirds; "
        "rss_tenths_mb is the mean of each tenth of the run.")


if __name__ == "__main__":
    main()
