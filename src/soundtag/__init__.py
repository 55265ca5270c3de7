"""soundtag: sound-class tags for audio, from a compact CNN trained on ESC-50 fused with AudioSet knowledge (YAMNet).

`from soundtag import Classifier` is the entry point. The sub-packages follow the data, each importing only those
before it: `audio` (decode, resample, windows) -> `features` (log-mel frontends) -> `models` (the CNN, YAMNet, the
fusion, heads) -> `inference` (`Classifier`) -> `training` (datasets, the loop, evaluation) and `library` (catalog,
search, QA) -> `interfaces` (the command line, the app). `errors` sits under all of them.
"""

__version__ = "0.6.0"
__all__ = ["AudioError", "Classifier"]


def __getattr__(name: str) -> object:
    """Import lazily, so `import soundtag.audio.load` does not pay for torch."""
    if name == "Classifier":
        from soundtag.inference.classifier import Classifier

        return Classifier
    if name == "AudioError":
        from soundtag.errors import AudioError

        return AudioError
    raise AttributeError(f"module 'soundtag' has no attribute {name!r}")
