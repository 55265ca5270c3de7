"""soundtag: sound-class tags for audio, from a compact CNN trained on ESC-50 fused with AudioSet knowledge (YAMNet).

`from soundtag import Classifier` is the entry point; the modules follow the pipeline: audio -> features (and
audioset: YAMNet with its own frontend) -> data (feature_cache) -> model -> augment -> train -> evaluate -> infer
(inference_config, runners, export) -> calibrate -> catalog (ingest, index) -> qa -> app, with `cli` on top; `errors`
is at the bottom, for all of them.
"""

__version__ = "0.5.0"
__all__ = ["AudioError", "Classifier"]


def __getattr__(name: str) -> object:
    """Import lazily, so `import soundtag.audio` does not pay for torch."""
    if name == "Classifier":
        from soundtag.infer import Classifier

        return Classifier
    if name == "AudioError":
        from soundtag.audio import AudioError

        return AudioError
    raise AttributeError(f"module 'soundtag' has no attribute {name!r}")
