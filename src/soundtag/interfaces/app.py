"""The web app: upload or record a clip and see its tags and its events over time; tag the microphone live; and,
given a catalog, search it by tag or by a sound.

Runs offline with the shipped model. `soundtag app` serves it; the repo's `app.py` is the Hugging Face Spaces entry.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from time import monotonic

import gradio as gr
import numpy as np
from matplotlib.figure import Figure

from soundtag.audio.load import AudioError, load, load_blocks
from soundtag.errors import ConfigError
from soundtag.features.logmel import LogMel
from soundtag.inference.classifier import Classifier
from soundtag.interfaces.memory import limit_arenas, release_freed_memory
from soundtag.interfaces.timeline import timeline_figure
from soundtag.library.catalog import answered_by, search
from soundtag.library.index import similar

MAX_SECONDS = 600  # longer uploads are refused with a message, before any tagging
MAX_MB = 250  # uploads: 10 minutes of 48 kHz stereo as 32-bit float WAV (230 MB) fit
MAX_FILE_SIZE = f"{MAX_MB}mb"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
LIVE_EVERY = 1.0  # seconds between live classifications
LIVE_SESSIONS = 16  # Live sessions served at once
LIVE_SECONDS = 300  # a Live session ends after this long (the page says so)
MAX_ROWS = 500  # search results shown
log = logging.getLogger("soundtag.interfaces.app")


def user_error(message: str) -> gr.Error:
    """A message for the page about the user's input; the server logs it as one line, not a traceback."""
    log.warning("refused: %s", message)
    return gr.Error(message, print_exception=False)


class Tagger:
    """The app's callbacks around one Classifier (and a catalog, if given); the live buffer is per session."""

    def __init__(self, clf: Classifier, db: str | Path | None = None):
        self.clf, self.db = clf, db
        self.frontend = LogMel(clf.bundle.frontend).eval()

    def _load(self, path: str | None) -> np.ndarray:
        """The upload at the model's rate; every problem becomes a message in the page."""
        if not path:
            raise user_error("Upload or record a clip first.")
        rate, blocks, held = self.clf.sample_rate, [], 0
        try:
            for block in load_blocks(path, rate):  # decoded as it comes: a long upload is refused at the cap
                held += len(block)
                if held > MAX_SECONDS * rate:
                    raise user_error(f"Cannot tag {Path(path).name}: it is longer than {MAX_SECONDS} s "
                                     f"({MAX_SECONDS / 60:g} minutes), this app's limit")
                blocks.append(block)
        except AudioError as err:
            raise user_error(f"Cannot tag {Path(err.source).name}: {err.reason}") from None
        return np.concatenate(blocks)

    def tag(self, path: str | None) -> tuple[dict, Figure, list[list]]:
        try:
            return self._tag(self._load(path))
        finally:
            release_freed_memory()

    def _tag(self, wave: np.ndarray) -> tuple[dict, Figure, list[list]]:
        """Tags (presence scores), the timeline picture and the events as rows (start s, end s, sound, peak)."""
        result = self.clf.analyze(wave, self.clf.sample_rate)
        label = {t["label"]: t["score"] for t in result.tags}
        events = [[f"{e['start']:.1f}", f"{e['end']:.1f}", e["label"], round(e["score"], 3)] for e in result.events]
        return label, timeline_figure(self.frontend, wave, result.events), events

    def live(self, chunk: tuple[int, np.ndarray] | None, state: dict | None) -> tuple[dict | None, dict]:
        """Append a microphone chunk to a rolling window; classify it at most once every LIVE_EVERY seconds."""
        state = state or {"buffer": np.zeros(0, np.float32), "last": -np.inf, "label": None}
        if chunk is None:
            return state["label"], state
        sr, data = chunk
        data = data[-round(self.clf.config.window * max(sr, 1)):]  # a chunk longer than the window: its end only
        try:
            wave = load(data, sample_rate=sr, target_rate=self.clf.sample_rate)
        except AudioError:
            return state["label"], state  # a malformed chunk: skip it, keep listening
        keep = round(self.clf.config.window * self.clf.sample_rate)
        state["buffer"] = np.concatenate([state["buffer"], wave])[-keep:]
        now = monotonic()
        if now - state["last"] >= LIVE_EVERY:
            state["last"] = now
            tags = self.clf.analyze(state["buffer"], self.clf.sample_rate, top_k=3).tags
            state["label"] = {t["label"]: t["score"] for t in tags}
        return state["label"], state


    def search(self, label: str, min_score: float) -> list[list]:
        hits = search(self.db, label, min_score)[:MAX_ROWS]
        return [[h["path"], h["start"], round(h["end"], 2), round(h["score"], 3)] for h in hits]

    def similar(self, path: str | None, k: float) -> list[list]:
        result = self.clf.analyze(self._load(path), self.clf.sample_rate)
        if result.silent:
            raise user_error("That clip is silent; there is no sound to compare.")
        return [[h["path"], round(h["score"], 3)] for h in similar(self.db, result.embedding, int(k))]


def server_settings() -> None:
    """Process-wide settings for serving, made by the entry points (`launch`, app.py) before the app is built."""
    limit_arenas()
    # Gradio keeps analytics for its last 10,000 requests and rebuilds a pandas table of them every few requests:
    # memory and time that grew with traffic in the load test (bench/load_app.py). Its last 1,000 are plenty.
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")


def build_app(clf: Classifier, examples: list[str] | None = None, db: str | Path | None = None) -> gr.Blocks:
    tagger = Tagger(clf, db)
    if examples is None:
        examples = sorted(str(p) for p in EXAMPLES.glob("*.flac"))
    with gr.Blocks(title="soundtag") as demo:
        gr.Markdown("# soundtag\nUpload or record a sound and get its tags: "
                    f"{len(clf.classes)} sound classes ("
                    f"{'AudioSet' if clf.config.taxonomy == 'audioset' else 'environmental sounds from ESC-50'}). "
                    "Each sound gets its own score "
                    "(several can be present at once); audio longer than "
                    f"{clf.config.window:g} s is scored in windows every {clf.config.hop:g} s "
                    f"(uploads up to {MAX_SECONDS / 60:g} minutes and {MAX_MB} MB), and a sound is "
                    f"an event where it scores at least {clf.config.threshold:.2f}.")
        with gr.Tab("Tag a clip"):
            with gr.Row():
                with gr.Column():
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio")
                    button = gr.Button("Tag", variant="primary")
                with gr.Column():
                    label = gr.Label(num_top_classes=5, label="Sounds in the clip (each scored on its own)")
                    image = gr.Plot(label="Spectrogram and events")
                    timeline = gr.Dataframe(headers=["start s", "end s", "sound", "peak score"], label="Events",
                                            interactive=False)
            button.click(tagger.tag, audio, [label, image, timeline], api_name="predict")
            if examples:  # a click tags the example at once
                gr.Examples(examples, inputs=audio, outputs=[label, image, timeline], fn=tagger.tag,
                            run_on_click=True, cache_examples=False,
                            label="Examples (ESC-10, CC BY; see examples/README.md)")
        with gr.Tab("Live"):
            gr.Markdown(f"Tags the last {clf.config.window:g} s of the microphone about once a second, for up to "
                        f"{LIVE_SECONDS // 60} minutes a session.")
            mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Microphone")
            live_label = gr.Label(num_top_classes=3, label="Now hearing")
            state = gr.State()
            # A Live session costs one 5-s window a second; its own pool of slots, and a time limit, keep a few
            # clients that connect and go quiet from locking everyone else out of Live (or out of uploads).
            mic.stream(tagger.live, [mic, state], [live_label, state], stream_every=0.5, time_limit=LIVE_SECONDS,
                       concurrency_limit=LIVE_SESSIONS, concurrency_id="live", api_name="live")
        if db is not None:
            with gr.Tab("Search a catalog"):
                catalog_tab(tagger)
    return demo.queue(default_concurrency_limit=2, max_size=64)


def catalog_tab(tagger: Tagger) -> None:
    """Windows with a tag, and files that sound like an upload, in the catalog the app was started with."""
    gr.Markdown(f"Catalog `{tagger.db}`: where a sound happens (its events, best first, up to {MAX_ROWS}), or the "
                f"files that sound most like a clip you upload or record. Answers come from the "
                f"{answered_by(tagger.db)}.")
    with gr.Row():
        label = gr.Dropdown(tagger.clf.classes, value=tagger.clf.classes[0], label="Sound")
        min_score = gr.Slider(0, 1, value=0, step=0.05, label="Minimum score (0: every event)")
        find = gr.Button("Find events", variant="primary")
    windows = gr.Dataframe(headers=["file", "start s", "end s", "peak score"], interactive=False, label="Events")
    find.click(tagger.search, [label, min_score], windows, api_name="search")
    with gr.Row():
        query = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Sounds like")
        k = gr.Slider(1, 50, value=10, step=1, label="How many files")
        like = gr.Button("Find similar files", variant="primary")
    files = gr.Dataframe(headers=["file", "similarity"], interactive=False, label="Similar files")
    like.click(tagger.similar, [query, k], files, api_name="similar")


def launch(model: str | None = None, host: str | None = None, port: int | None = None, backend: str | None = None,
           db: str | Path | None = None, taxonomy: str | None = None, **kwargs: object) -> gr.Blocks:
    """Serve the app on `host`:`port`, else $GRADIO_SERVER_NAME:$GRADIO_SERVER_PORT (as Hugging Face Spaces sets
    them), else 127.0.0.1:7860 (this machine only)."""
    host = host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = port or int(os.environ.get("GRADIO_SERVER_PORT") or 7860)
    if db is not None and not Path(db).is_file():
        raise FileNotFoundError(f"{db}: no such catalog; create it with `soundtag tag ROOT --db {db}`")
    check_port(host, port)  # before the model loads
    server_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader's AVX512 notes read like errors; they are not
    demo = build_app(Classifier.load(model, backend=backend, taxonomy=taxonomy), db=db)
    demo.launch(server_name=host, server_port=port, max_file_size=MAX_FILE_SIZE, show_error=True, **kwargs)
    return demo


def check_port(host: str, port: int) -> None:
    """Refuse, in one line, a port that another program holds (Gradio would answer with a traceback)."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror}); choose another port with --port "
                              "or GRADIO_SERVER_PORT") from None
