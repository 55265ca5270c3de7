"""The web app: upload or record a clip and see every sound in it and when each is heard; tag the microphone live;
and, given a catalog, search it by tag or by a sound and listen to what it finds.

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
from soundtag.inference.events import PIECE_STEP
from soundtag.interfaces.memory import limit_arenas, release_freed_memory
from soundtag.interfaces.present import PRESENT, clock, event_rows, percent, sound_rows, unfamiliar_note
from soundtag.interfaces.timeline import timeline_figure
from soundtag.library.catalog import answered_by, lowest_score, search
from soundtag.library.index import similar
from soundtag.models.cnn import ModelBundle
from soundtag.models.yamnet import class_names

MAX_SECONDS = 600  # longer uploads are refused with a message, before any tagging
MAX_MB = 250  # uploads: 10 minutes of 48 kHz stereo as 32-bit float WAV (230 MB) fit
MAX_FILE_SIZE = f"{MAX_MB}mb"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
LIVE_EVERY = 1.0  # seconds between live classifications
LIVE_SESSIONS = 16  # Live sessions served at once
LIVE_SECONDS = 300  # a Live session ends after this long (the page says so)
MAX_ROWS = 500  # search results shown
TABLE_HEIGHT = 100_000  # px: tables grow with their rows instead of scrolling inside themselves
CONTEXT_SECONDS = 1.0  # heard before and after an event played from the catalog
MAX_PLAY_SECONDS = 30.0
log = logging.getLogger("soundtag.interfaces.app")


class Refused(Exception):
    """An input the app will not tag; its message is for the page's status line."""


def user_error(message: str) -> Refused:
    """A message for the page about the user's input; the server logs it as one line, not a traceback."""
    log.warning("refused: %s", message)
    return Refused(message)


class Tagger:
    """The app's callbacks around one Classifier (and a catalog, if given); the live buffer is per session. A user's
    mistake becomes the status line of the page, which every run rewrites, never an error left on the outputs."""

    def __init__(self, clf: Classifier, db: str | Path | None = None):
        self.clf, self.db = clf, db
        self.frontend = LogMel(clf.bundle.frontend).eval()
        self.ood_limit = float(clf.ood_stats["threshold"]) if clf.ood_stats else None
        self._audioset: Classifier | None = None

    def audioset_hint(self, wave: np.ndarray) -> str:
        """What AudioSet's 521 classes hear in `wave`, for audio where none of the model's own classes is present
        (a melody, speech...); '' for models that do not read AudioSet's embedding or already tag with its
        classes."""
        if self.clf.config.taxonomy == "audioset" or self.clf.config.audioset_weight == 0 or \
                not isinstance(self.clf.bundle, ModelBundle):
            return ""
        if self._audioset is None:
            self._audioset = Classifier(self.clf.bundle, taxonomy="audioset")
        tags = self._audioset.analyze(wave, self.clf.sample_rate, top_k=3).tags
        return "AudioSet's classes hear " + ", ".join(f"{t['label']} {percent(t['score'])}" for t in tags) + "."

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

    def check(self, path: str | None) -> str:
        """The status line for an upload or recording as it arrives: its length, or why it cannot be tagged."""
        if not path:
            return ""
        try:
            seconds = len(self._load(path)) / self.clf.sample_rate
        except Refused as err:
            return warning(str(err))
        finally:
            release_freed_memory()
        return f"**{Path(path).name}**: {clock(seconds)} of audio. Press **Tag**."

    def tag(self, path: str | None) -> tuple[str, list[list], Figure | None, list[list]]:
        """Status line, sounds (every one present, then the next best below the threshold), the timeline picture
        and the events (sound, from, to, peak)."""
        try:
            return self._tag(self._load(path), Path(path).name)
        except Refused as err:
            return warning(str(err)), [], None, []
        finally:
            release_freed_memory()

    def _tag(self, wave: np.ndarray, name: str) -> tuple[str, list[list], Figure, list[list]]:
        rate, threshold = self.clf.sample_rate, self.clf.config.threshold
        result = self.clf.analyze(wave, rate, top_k=len(self.clf.classes))
        if result.silent:
            return f"**{name}** is silent (below {self.clf.config.silence_dbfs:g} dBFS throughout).", [], \
                timeline_figure(self.frontend, wave, []), []
        events = self.clf.narrow_events(wave, result.events)
        sounds = sound_rows({t["label"]: t["score"] for t in result.tags}, threshold)
        present = sum(row[2] == PRESENT for row in sounds)
        found = (f"{present} sound{'s' * (present != 1)} present." if present else
                 f"none of its {len(self.clf.classes)} sounds reaches the threshold ({percent(threshold)}); the "
                 f"best guesses are listed below it. {self.audioset_hint(wave)}")
        status = f"**{name}** ({clock(len(wave) / rate)}): {found} {unfamiliar_note(result, self.ood_limit)}"
        return status.strip(), sounds, timeline_figure(self.frontend, wave, events), event_rows(events)

    def live(self, chunk: tuple[int, np.ndarray] | None, state: dict | None) -> tuple[list[list] | None, dict]:
        """Append a microphone chunk to a rolling window; classify it at most once every LIVE_EVERY seconds."""
        state = state or {"buffer": np.zeros(0, np.float32), "last": -np.inf, "sounds": None}
        if chunk is None:
            return state["sounds"], state
        sr, data = chunk
        data = data[-round(self.clf.config.window * max(sr, 1)):]  # a chunk longer than the window: its end only
        try:
            wave = load(data, sample_rate=sr, target_rate=self.clf.sample_rate)
        except AudioError:
            return state["sounds"], state  # a malformed chunk: skip it, keep listening
        keep = round(self.clf.config.window * self.clf.sample_rate)
        state["buffer"] = np.concatenate([state["buffer"], wave])[-keep:]
        now = monotonic()
        if now - state["last"] >= LIVE_EVERY:
            state["last"] = now
            tags = self.clf.analyze(state["buffer"], self.clf.sample_rate, top_k=len(self.clf.classes)).tags
            state["sounds"] = sound_rows({t["label"]: t["score"] for t in tags}, self.clf.config.threshold, below=2)
        return state["sounds"], state

    def search(self, label: str, min_percent: float) -> tuple[str, list[list], list[dict]]:
        """Status line, the events of `label` at or above `min_percent` (file, from, to, peak) and the hits behind
        the rows, for playing one."""
        hits = search(self.db, label, min_percent / 100)
        if not hits:
            return f"Nothing found: no {label} events at or above {min_percent:.0f}% in this catalog.", [], []
        more = f", the best {MAX_ROWS} shown" if len(hits) > MAX_ROWS else ""
        hits = hits[:MAX_ROWS]
        rows = [[h["path"], clock(h["start"]), clock(h["end"]), percent(h["score"])] for h in hits]
        return f"{len(rows)} {label} events{more}. Click one to listen.", rows, hits

    def play_event(self, hits: list[dict], evt: gr.SelectData) -> tuple[tuple[int, np.ndarray] | None, str]:
        """The event clicked, with CONTEXT_SECONDS before and after."""
        hit = hits[evt.index[0]]
        return self._excerpt(hit["path"], hit["start"] - CONTEXT_SECONDS, hit["end"] + CONTEXT_SECONDS)

    def similar(self, path: str | None, k: float) -> tuple[str, list[list], list[dict]]:
        try:
            result = self.clf.analyze(self._load(path), self.clf.sample_rate)
        except Refused as err:
            return warning(str(err)), [], []
        if result.silent:
            return warning("That clip is silent; there is no sound to compare."), [], []
        hits = similar(self.db, result.embedding, int(k))
        if not hits:
            return "Nothing found: the catalog holds no tagged files to compare with.", [], []
        rows = [[h["path"], percent(h["score"])] for h in hits]
        return f"The {len(rows)} files that sound most like {Path(path).name}. Click one to listen.", rows, hits

    def play_file(self, hits: list[dict], evt: gr.SelectData) -> tuple[tuple[int, np.ndarray] | None, str]:
        """The start of the file clicked (up to MAX_PLAY_SECONDS)."""
        return self._excerpt(hits[evt.index[0]]["path"], 0.0, MAX_PLAY_SECONDS)

    def _excerpt(self, path: str, start: float, end: float) -> tuple[tuple[int, np.ndarray] | None, str]:
        """Audio from `start` to `end` s of a catalogued file (at most MAX_PLAY_SECONDS), decoded block by block,
        and what it is; a file that is gone or changed is a status line."""
        rate = self.clf.sample_rate
        first, last = round(max(0.0, start) * rate), round(min(end, max(0.0, start) + MAX_PLAY_SECONDS) * rate)
        pieces, at = [], 0
        try:
            for block in load_blocks(path, rate):
                pieces.append(block[max(0, first - at):max(0, last - at)])
                at += len(block)
                if at >= last:
                    break
        except AudioError as err:
            return None, warning(f"Cannot play {err.source}: {err.reason}")
        pcm = (np.clip(np.concatenate(pieces), -1, 1) * 32767).astype(np.int16)  # what the player takes, unconverted
        return (rate, pcm), f"Playing {Path(path).name} from {clock(first / rate)}."


def warning(message: str) -> str:
    """A user's mistake as the page's status line."""
    return f"⚠️ {message}"


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
        gr.Markdown(intro(clf))
        with gr.Tab("Tag a clip"):
            with gr.Row():
                with gr.Column(scale=2):
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio")
                    button = gr.Button("Tag", variant="primary")
                    if examples:
                        example_slot = gr.Column()
                with gr.Column(scale=3):
                    status = gr.Markdown(elem_id="status")
                    sounds = gr.Dataframe(headers=["sound", "score", ""], label="Sounds in the clip",
                                          interactive=False, max_height=TABLE_HEIGHT, elem_id="sounds")
                    image = gr.Plot(label="Spectrogram and events")
                    events = gr.Dataframe(headers=["sound", "from", "to", "peak"], label="Events (when each sound "
                                          "is heard)", interactive=False, max_height=TABLE_HEIGHT, elem_id="events")
            for arrived in (audio.upload, audio.stop_recording):  # checked on arrival, not only on Tag
                arrived(tagger.check, audio, status, show_progress="hidden")
            button.click(tagger.tag, audio, [status, sounds, image, events], api_name="predict")
            if examples:
                with example_slot:  # a click tags the example at once
                    gr.Examples(examples, inputs=audio, outputs=[status, sounds, image, events], fn=tagger.tag,
                                run_on_click=True, cache_examples=False,
                                label="Examples (ESC-10, CC BY; see examples/README.md)")
            with gr.Accordion("The sounds it knows", open=False):
                gr.Markdown(class_lists(clf))
        with gr.Tab("Live"):
            gr.Markdown(f"Tags the last {clf.config.window:g} s of the microphone about once a second, for up to "
                        f"{LIVE_SECONDS // 60} minutes a session.")
            mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Microphone")
            live_sounds = gr.Dataframe(headers=["sound", "score", ""], label="Now hearing", interactive=False,
                                       elem_id="live-sounds")
            state = gr.State()
            # A Live session costs one 5-s window a second; its own pool of slots, and a time limit, keep a few
            # clients that connect and go quiet from locking everyone else out of Live (or out of uploads).
            mic.stream(tagger.live, [mic, state], [live_sounds, state], stream_every=0.5, time_limit=LIVE_SECONDS,
                       concurrency_limit=LIVE_SESSIONS, concurrency_id="live", api_name="live")
        if db is not None:
            with gr.Tab("Search a catalog"):
                catalog_tab(tagger)
    return demo.queue(default_concurrency_limit=2, max_size=64)


def intro(clf: Classifier) -> str:
    kind = "AudioSet's" if clf.config.taxonomy == "audioset" else "environmental"
    return (f"# soundtag\nWhat is in a recording, and when: {len(clf.classes)} {kind} sound classes, each scored on "
            f"its own, so several can be present at once. A sound is present from {percent(clf.config.threshold)}; "
            f"audio is scored in {clf.config.window:g}-s windows every {clf.config.hop:g} s and event edges are "
            f"placed to {PIECE_STEP:g} s. Uploads up to {MAX_SECONDS / 60:g} minutes and {MAX_MB} MB.")


def class_lists(clf: Classifier) -> str:
    """The model's own classes and AudioSet's (when its model is in the cache), as the page lists them."""
    own, audioset = clf.bundle.classes, class_names()
    parts = [f"**The model's {len(own)} classes**: {', '.join(own)}."]
    if audioset:
        how = "the tags here" if clf.config.taxonomy == "audioset" else "tags with `soundtag app --taxonomy audioset`"
        parts.append(f"**AudioSet's {len(audioset)} classes** ({how}): {', '.join(audioset)}.")
    return "\n\n".join(parts)


def catalog_tab(tagger: Tagger) -> None:
    """Events of a sound, and files that sound like an upload, in the catalog the app was started with; a click on
    a result plays it."""
    floor = lowest_score(tagger.db)
    floor = 0.0 if floor is None else float(np.floor(100 * floor))
    gr.Markdown(f"Catalog `{tagger.db}`: where a sound happens (its events, best first, up to {MAX_ROWS}), or the "
                f"files that sound most like a clip you upload or record. Answers come from the "
                f"{answered_by(tagger.db)}.")
    status = gr.Markdown(elem_id="catalog-status")
    player = gr.Audio(label="Listen", interactive=False, type="numpy")
    with gr.Row():
        label = gr.Dropdown(tagger.clf.classes, value=tagger.clf.classes[0], label="Sound")
        min_score = gr.Slider(floor, 100, value=floor, step=1, label="Minimum peak score (%)")
        find = gr.Button("Find events", variant="primary")
    hits = gr.State([])
    windows = gr.Dataframe(headers=["file", "from", "to", "peak"], interactive=False, label="Events",
                           max_height=TABLE_HEIGHT, elem_id="catalog-events")
    find.click(tagger.search, [label, min_score], [status, windows, hits], api_name="search")
    windows.select(tagger.play_event, hits, [player, status])
    with gr.Row():
        query = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Sounds like")
        k = gr.Slider(1, 50, value=10, step=1, label="How many files")
        like = gr.Button("Find similar files", variant="primary")
    like_hits = gr.State([])
    files = gr.Dataframe(headers=["file", "similarity"], interactive=False, label="Similar files",
                         max_height=TABLE_HEIGHT)
    like.click(tagger.similar, [query, k], [status, files, like_hits], api_name="similar")
    files.select(tagger.play_file, like_hits, [player, status])


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
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's requests to itself at start-up
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
