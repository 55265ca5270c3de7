"""Delay from a sound to its label in the app's Live tab, measured in a real browser with a fake microphone.

    python bench/live_delay.py [--model src/soundtag/models/esc50] [--clip examples/dog.flac] [--repeats 3]

Chromium's fake capture device plays a file of 6 s of silence followed by the clip, as if it were the microphone.
The app runs in this process, so its clock and the browser driver's are the same: the clip starts 6 s after the
first microphone chunk reached the server, less one chunk's length, and its sound where it first reaches -40 dBFS;
the delay runs from then until the page's "Now hearing" table first lists a sound present other than `silence`, and
until it first lists the clip's own class as present.
"""

from __future__ import annotations

import argparse
import re
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from common import median, report
from playwright.sync_api import sync_playwright

from soundtag.inference.classifier import SILENCE, Classifier
from soundtag.interfaces import app as app_module
from soundtag.interfaces.present import PRESENT

LEAD_IN = 6.0
CHUNK = 0.5  # the app's stream_every
ONSET_LEVEL = 0.01  # -40 dBFS: the clip's sound starts at its first sample this loud
ROWS = """rows => rows.filter(r => r.children[0]?.tagName !== 'TH')
    .map(r => [...r.children].map(c => c.innerText.trim())).filter(r => r.some(x => x))"""  # the table's cells
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def one_run(url: str, wav: Path, target: str, arrivals: list[float], sound_at: float) -> tuple[float, float]:
    arrivals.clear()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=[*ARGS, f"--use-file-for-fake-audio-capture={wav}"])
        page = browser.new_context(permissions=["microphone"]).new_page()
        page.set_default_timeout(90_000)
        page.goto(url)
        page.get_by_role("tab", name="Live").click()
        page.get_by_role("button", name=re.compile("^Record$")).first.click()
        first_sound = first_target = None
        deadline = time.monotonic() + LEAD_IN + 15
        while time.monotonic() < deadline and first_target is None:
            present = {row[0] for row in page.eval_on_selector_all("#live-sounds [role=row]", ROWS) if
                       row[2:] == [PRESENT]} - {SILENCE}
            now = time.monotonic()
            if present and arrivals:
                first_sound = first_sound or now
                if target in present:
                    first_target = now
            time.sleep(0.05)
        browser.close()
    onset = arrivals[0] - CHUNK + LEAD_IN + sound_at
    return (first_sound or float("nan")) - onset, (first_target or float("nan")) - onset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--clip", default="examples/dog.flac")
    parser.add_argument("--label", default="dog", help="the clip's class")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    clf = Classifier.load(args.model)
    tagger_live, arrivals = app_module.Tagger.live, []

    def timed_live(self: app_module.Tagger, chunk: object, state: dict | None) -> tuple:
        if chunk is not None:
            arrivals.append(time.monotonic())
        return tagger_live(self, chunk, state)

    app_module.Tagger.live = timed_live
    demo = app_module.build_app(clf, examples=[])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    clip, sr = sf.read(args.clip, dtype="float32")
    sound_at = float(np.argmax(np.abs(clip) > ONSET_LEVEL) / sr)  # clips often open with silence
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "mic.wav"
        signal = np.concatenate([np.zeros(int(LEAD_IN * sr), np.float32), np.tile(clip, 3)])
        sf.write(wav, signal, sr, subtype="PCM_16")
        runs = [one_run(demo.local_url, wav, args.label, arrivals, sound_at) for _ in range(args.repeats)]
    demo.close()
    rows = [{"run": i + 1, "to_first_tag_s": a, "to_correct_tag_s": b} for i, (a, b) in enumerate(runs)]
    rows.append({"run": "median", "to_first_tag_s": median([a for a, _ in runs]),
                 "to_correct_tag_s": median([b for _, b in runs])})
    report("live_delay", rows, f"Live tab, Chromium fake microphone playing {LEAD_IN:.0f} s of silence then "
           f"{args.clip} ({args.label}); app streams {CHUNK} s chunks and classifies the last 5 s at most once a "
           "second. to_first_tag: sound onset to the first sound other than silence listed as present in the 'Now "
           "hearing' table; to_correct_tag: to the clip's class listed as present. "
           f"Onset = first chunk's arrival at the server - one chunk + lead-in + the clip's first sample above "
           f"-40 dBFS ({sound_at:.2f} s into it).")


if __name__ == "__main__":
    main()
