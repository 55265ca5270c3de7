"""The web app: upload or record a clip and see its tags, spectrogram and timeline; or tag the microphone live.

Runs offline with the shipped model. `soundtag app` serves it; the repo's `app.py` is the Hugging Face Spaces entry.
"""

from __future__ import annotations

from pathlib import Path
from time import monotonic

import gradio as gr
import numpy as np
import torch
from matplotlib.figure import Figure

from soundtag.audio import AudioError, load
from soundtag.features import LogMel
from soundtag.infer import Classifier

MAX_SECONDS = 600  # longer uploads are refused with a message, before any tagging
MAX_FILE_SIZE = "50mb"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LIVE_EVERY = 1.0  # seconds between live classifications


def spectrogram_figure(frontend: LogMel, wave: np.ndarray, max_seconds: float = 60.0) -> Figure:
    """The log-mel of the first `max_seconds`, time in seconds across, mel bands up.

    Returned as a figure (sent inline), not an image file: identical uploads would otherwise share one cached file
    that concurrent requests rewrite while it is being served."""
    c = frontend.config
    wave = wave[: int(max_seconds * c.sample_rate)]
    with torch.inference_mode():
        mel = frontend(torch.from_numpy(wave)).numpy()
    fig = Figure(figsize=(8, 2.6))
    ax = fig.subplots()
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma",
              extent=(0, mel.shape[1] * c.hop_length / c.sample_rate, 0, c.n_mels))
    ax.set(xlabel="seconds", ylabel="mel band")
    fig.tight_layout()
    return fig


class Tagger:
    """The app's callbacks around one Classifier; the live buffer is per session, in gr.State."""

    def __init__(self, clf: Classifier):
        self.clf = clf
        self.frontend = LogMel(clf.bundle.frontend).eval()

    def tag(self, path: str | None) -> tuple[dict, Figure, list[list]]:
        if not path:
            raise gr.Error("Upload or record a clip first.")
        try:
            wave = load(path, target_rate=self.clf.sample_rate)
            seconds = len(wave) / self.clf.sample_rate
            if seconds > MAX_SECONDS:
                raise AudioError(Path(path).name, f"is {seconds:.0f} s long; this app takes up to {MAX_SECONDS} s")
            result = self.clf.analyze(wave, self.clf.sample_rate)
        except AudioError as err:
            raise gr.Error(f"Cannot tag {Path(err.source).name}: {err.reason}") from None
        label = {t["label"]: t["score"] for t in result.tags}
        timeline = [[f"{w.start:.1f}", f"{w.end:.1f}", w.tags[0]["label"], round(w.tags[0]["score"], 3)]
                    for w in result.windows]
        return label, spectrogram_figure(self.frontend, wave), timeline

    def live(self, chunk: tuple[int, np.ndarray] | None, state: dict | None) -> tuple[dict | None, dict]:
        """Append a microphone chunk to a rolling window; classify it at most once every LIVE_EVERY seconds."""
        state = state or {"buffer": np.zeros(0, np.float32), "last": -np.inf, "label": None}
        if chunk is None:
            return state["label"], state
        sr, data = chunk
        try:
            wave = load(data, sample_rate=sr, target_rate=self.clf.sample_rate)
        except AudioError:
            return state["label"], state  # a malformed chunk: skip it, keep listening
        keep = round(self.clf.window * self.clf.sample_rate)
        state["buffer"] = np.concatenate([state["buffer"], wave])[-keep:]
        now = monotonic()
        if now - state["last"] >= LIVE_EVERY:
            state["last"] = now
            tags = self.clf.analyze(state["buffer"], self.clf.sample_rate, top_k=3).tags
            state["label"] = {t["label"]: t["score"] for t in tags}
        return state["label"], state


def build_app(clf: Classifier, examples: list[str] | None = None) -> gr.Blocks:
    tagger = Tagger(clf)
    if examples is None:
        examples = sorted(str(p) for p in EXAMPLES.glob("*.flac"))
    with gr.Blocks(title="soundtag") as demo:
        gr.Markdown("# soundtag\nUpload or record a sound and get its tags: "
                    f"{len(clf.classes)} environmental sound classes from ESC-50. Audio longer than "
                    f"{clf.window:g} s is tagged in windows every {clf.hop:g} s (up to {MAX_SECONDS} s).")
        with gr.Tab("Tag a clip"):
            with gr.Row():
                with gr.Column():
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio")
                    button = gr.Button("Tag", variant="primary")
                    if examples:
                        gr.Examples(examples, inputs=audio, label="Examples (ESC-10, CC BY; see examples/README.md)")
                with gr.Column():
                    label = gr.Label(num_top_classes=5, label="Top tags")
                    image = gr.Plot(label="Log-mel spectrogram")
                    timeline = gr.Dataframe(headers=["start s", "end s", "tag", "score"], label="Timeline",
                                            interactive=False)
            button.click(tagger.tag, audio, [label, image, timeline], api_name="predict")
        with gr.Tab("Live"):
            gr.Markdown(f"Tags the last {clf.window:g} s of the microphone about once a second.")
            mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Microphone")
            live_label = gr.Label(num_top_classes=3, label="Now hearing")
            state = gr.State()
            mic.stream(tagger.live, [mic, state], [live_label, state], stream_every=0.5, time_limit=600,
                       api_name="live")
    return demo.queue(default_concurrency_limit=2, max_size=64)


def launch(model: str | None = None, host: str = "127.0.0.1", port: int = 7860, backend: str = "torch",
           **kwargs: object) -> gr.Blocks:
    demo = build_app(Classifier.load(model, backend=backend))
    demo.launch(server_name=host, server_port=port, max_file_size=MAX_FILE_SIZE, show_error=True, **kwargs)
    return demo
