"""The `soundtag` command: argument parsing only; the work happens in the modules it calls."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from soundtag import __version__
from soundtag.data import ESC50_URL
from soundtag.errors import AudioError, CatalogError, ConfigError, DatasetError, ModelError, QAError
from soundtag.inference_config import BACKENDS, PRECISIONS
from soundtag.qa import QAConfig

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


def _inference_args(p: argparse.ArgumentParser) -> None:
    """The inference settings a command may override; each defaults to the model's own (its model.json)."""
    p.add_argument("--top-k", type=_positive(int), help="tags per file and window (default: 5)")
    p.add_argument("--window", type=_positive(float),
                   help="window seconds (default: the clip length the model was trained on, 5 for ESC-50)")
    p.add_argument("--hop", type=_positive(float),
                   help="step between windows, seconds (default: the model's share of the window, a half)")
    p.add_argument("--threshold", type=float,
                   help="score from which a sound counts as present, an event (default: the model's, chosen "
                        "out-of-fold by `soundtag calibrate`)")


def _classifier(args: argparse.Namespace, **settings: object) -> object:
    """The model of --model with the command's inference overrides; a note when the window differs from the clip
    length the model was trained on (scores on other lengths were never measured)."""
    from soundtag.infer import Classifier

    clf = Classifier.load(args.model, window=args.window, hop=args.hop, top_k=args.top_k, threshold=args.threshold,
                          **settings)
    trained = clf.bundle.audio.duration
    if abs(clf.config.window - trained) > 1e-6:
        print(f"note: the model was trained on {trained:g}-s clips; its scores on {clf.config.window:g}-s windows "
              "are not what its evaluation measured", file=sys.stderr)
    return clf


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

    p = sub.add_parser(
        "predict", help="tag audio files", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Tag each FILE (any format soundfile or ffmpeg reads, any length). Each sound gets its own "
                    "score between 0 and 1 (several sounds can score high at once). Audio longer than one window "
                    "is cut into overlapping windows: a file's score for a sound is its best window's, and its "
                    "events (listed under the file, and in --json) are the time ranges where the sound reaches "
                    "the model's decision threshold. Near-silent audio is reported as silence. A bad file is "
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
                       epilog="Example: soundtag search --db catalog.db --label dog --min-score 0.8 --between 10 60")
    p.add_argument("--db", required=True, help="the SQLite catalog")
    p.add_argument("--label", required=True, help="a class name, e.g. dog")
    p.add_argument("--min-score", type=float, default=0.5, help="(default: %(default)s)")
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
                   help="flag a file where no window scores this on any sound (default: %(default)s)")
    p.add_argument("--max-ood", type=float, help="distance from the training audio above which a window is "
                                                 "unfamiliar (default: the model's own threshold)")
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
    p.add_argument("--db", help="a catalog (from `soundtag tag`) to search in the app's catalog tab")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as err:
        print(f"soundtag {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"soundtag {args.command}: interrupted", file=sys.stderr)
        return 130


def cmd_download(args: argparse.Namespace) -> int:
    from soundtag.data import download_esc50

    root = download_esc50(args.root, args.url)
    print(f"ESC-50 is ready in {root}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from soundtag.config import make_config
    from soundtag.evaluate import evaluate_run
    from soundtag.train import run

    saved = Path(args.out) / "config.json"
    if args.resume and saved.exists():
        if args.config or args.overrides:
            raise ConfigError("--resume continues with the run's saved config; drop --config and overrides")
        config = make_config(file=saved)
    else:
        config = make_config(args.preset, args.config, args.overrides)
    out = run(config, args.data, args.out, folds=args.folds, full=args.full, resume=args.resume)
    if not args.full and int(os.environ.get("RANK", 0)) == 0:  # under torchrun, one process reports
        print_summary(evaluate_run(out, args.data))
    print(f"run saved in {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from soundtag.evaluate import compare, evaluate_run

    saved_path = Path(args.run) / "summary.json"
    saved = json.loads(saved_path.read_text()) if args.check and saved_path.is_file() else None
    if args.check and saved is None:
        raise FileNotFoundError(f"{saved_path}: no saved summary to check against")
    summary = evaluate_run(args.run, args.data, args.out)
    print_summary(summary)
    print(f"reports written to {args.out or args.run}")
    if saved is None:
        return 0
    differences = compare(saved, json.loads(json.dumps(summary)))  # fold keys as strings, as saved
    for line in differences:
        print(f"differs: {line}", file=sys.stderr)
    print("matches the saved summary within 0.5 points" if not differences else
          f"{len(differences)} differences from {saved_path}", file=sys.stderr)
    return 1 if differences else 0


def print_summary(summary: dict) -> None:
    print(f"{'fold':>6} {'accuracy':>9} {'macro F1':>9} {'train s':>8}")
    for k, f in summary["folds"].items():
        print(f"{k:>6} {f['accuracy']:>9.4f} {f['macro_f1']:>9.4f} {f['train_seconds']:>8.0f}")
    print(f"{'mean':>6} {summary['accuracy_mean']:>9.4f} {summary['macro_f1_mean']:>9.4f} "
          f"{summary['train_wall_seconds']:>8.0f}")
    print(f"{'std':>6} {summary['accuracy_std']:>9.4f} {summary['macro_f1_std']:>9.4f}")


def cmd_predict(args: argparse.Namespace) -> int:
    clf = _classifier(args, backend=args.backend)
    failed, width, drawn = 0, min(60, max(len(f) for f in args.files)), set()
    if not args.json:
        print(f"{'file':<{width}}  {'seconds':>7}  tags")
    for start in range(0, len(args.files), 32):  # shared model batches, output as each group finishes
        chunk = args.files[start:start + 32]
        for path, result in zip(chunk, clf.analyze_batch(chunk)):
            failed += isinstance(result, AudioError)
            print(json.dumps(_as_record(path, result)) if args.json else _as_text(path, result, width), flush=True)
            if args.plots and not isinstance(result, AudioError):
                print(f"timeline: {_plot(clf, path, result, Path(args.plots), drawn)}", file=sys.stderr)
    if failed and not args.json:
        print(f"{failed} of {len(args.files)} files could not be tagged", file=sys.stderr)
    return 1 if failed else 0


def _plot(clf: object, path: str, result: object, folder: Path, drawn: set[Path]) -> Path:
    """Draw `path`'s timeline into `folder`, named after the file (numbered when two files of this run share a
    name); `drawn` holds the pictures this run has written."""
    from soundtag.audio import load
    from soundtag.features import LogMel
    from soundtag.timeline import timeline_figure

    folder.mkdir(parents=True, exist_ok=True)
    out, n = folder / f"{Path(path).stem}.png", 1
    while out in drawn:
        n += 1
        out = folder / f"{Path(path).stem}-{n}.png"
    wave = load(path, None, clf.sample_rate)
    timeline_figure(LogMel(clf.bundle.frontend), wave, result.events, title=Path(path).name).savefig(out, dpi=100)
    drawn.add(out)
    return out


def cmd_onnx(args: argparse.Namespace) -> int:
    from soundtag.export import export_onnx
    from soundtag.infer import model_folder
    from soundtag.model import load_model

    path = export_onnx(load_model(model_folder(args.model)), args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from soundtag.ingest import tag_library
    from soundtag.memory import keep_freed_memory

    missing = [r for r in args.roots if not Path(r).exists()]
    if missing:  # an unmounted share must not look like an empty library
        raise FileNotFoundError(f"{', '.join(missing)}: no such folder or file")
    clf = _classifier(args, precision=args.precision)
    if args.address and args.engine != "ray":
        raise ConfigError("--address is for --engine ray")
    if args.engine == "ray" and args.workers == 0:
        raise ConfigError("--engine ray needs --workers 1 or more (model actors)")
    keep_freed_memory()
    counts = tag_library(args.roots, args.db, clf, workers=args.workers, engine=args.engine, address=args.address)
    print(f"{counts['found']} files: {counts['tagged']} tagged, {counts['failed']} unreadable, {counts['skipped']} "
          f"unchanged since the last run; {counts['seconds']:.1f} s")
    if counts["failed"]:
        print(f"{counts['failed']} files could not be read: `soundtag qa --db {args.db}` lists them with the reason",
              file=sys.stderr)
    return 1 if counts["failed"] else 0


def cmd_export(args: argparse.Namespace) -> int:
    from soundtag.catalog import export, export_format

    print(f"wrote {export(args.db, args.out, export_format(args.out, args.format))} rows to {args.out}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from soundtag.catalog import search

    hits = search(args.db, args.label, args.min_score, tuple(args.between) if args.between else None)
    for hit in hits:
        print(f"{hit['score']:.3f}  {hit['start']:8.1f}-{hit['end']:<8.1f}  {hit['path']}")
    print(f"{len(hits)} events", file=sys.stderr)
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    from soundtag.index import similar
    from soundtag.infer import Classifier

    result = Classifier.load(args.model).analyze(args.file)
    if result.silent:
        raise AudioError(args.file, "is silent; there is no sound to compare")
    hits = similar(args.db, result.embedding, args.k, exclude=args.file)
    for hit in hits:
        print(f"{hit['score']:.3f}  {hit['path']}")
    print(f"{len(hits)} files", file=sys.stderr)
    return 0


def cmd_qa(args: argparse.Namespace) -> int:
    import tempfile

    from soundtag.infer import Classifier
    from soundtag.ingest import tag_library
    from soundtag.qa import CHECKS, check_catalog, read_rules, write_csv

    if not args.roots and not args.db:
        raise ConfigError("give folders or files to check, or --db with a tagged catalog")
    clf = Classifier.load(args.model)
    rules = read_rules(args.rules) if args.rules else ()
    unknown = sorted({x for x in args.expect + tuple(x for _, labels in rules for x in labels)} - set(clf.classes))
    if unknown:
        raise ConfigError(f"unknown label(s) {', '.join(unknown)}; the model knows: {', '.join(clf.classes)}")
    max_ood = args.max_ood
    if max_ood is None and "threshold" in clf.ood_stats:
        max_ood = float(clf.ood_stats["threshold"])
    config = QAConfig(expect=args.expect, rules=rules, unexpected_score=args.unexpected_score,
                      unsure_score=args.unsure_score, max_ood=max_ood)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "catalog.db"
        if args.roots:
            tag_library(args.roots, db, clf)
        flags, checked = check_catalog(db, config, [Path(r) for r in args.roots] or None)
    width = min(70, max((len(f.path) for f in flags), default=4))
    for f in sorted(flags, key=lambda f: (CHECKS.index(f.check), f.path)):
        print(f"{f.check:<11} {f.path:<{width}}  {f.detail}")
    if args.csv:
        write_csv(flags, args.csv)
    print(f"{len({f.path for f in flags})} of {checked} files flagged ({len(flags)} flags)"
          + ("" if max_ood is not None else "; unfamiliar-audio check off: the model has no ood.safetensors"),
          file=sys.stderr)
    return 1 if flags else 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from soundtag.calibrate import calibrate_model

    done = calibrate_model(args.data, args.cv, args.model, args.quantile)
    print(f"{args.model}: a sound is present from score {done['threshold']:.2f}; unfamiliar above distance "
          f"{done['ood_threshold']:.2f} ({100 - args.quantile:g}% of the {done['held_out']} held-out clips)")
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from soundtag.app import launch

    launch(args.model, host=args.host, port=args.port, backend=args.backend, db=args.db)
    return 0


def _as_record(path: str, result: object) -> dict:
    if isinstance(result, AudioError):
        return {"file": path, "error": result.reason}
    return {"file": path, "duration": round(result.duration, 3), "silent": result.silent, "tags": result.tags,
            "events": result.events,
            "windows": [{"start": w.start, "end": round(w.end, 3), "tags": w.tags} for w in result.windows]}


def _as_text(path: str, result: object, width: int) -> str:
    """One table row per file (path, seconds, tags) and, for audio longer than one window, one indented row per
    event (its time range, sound and peak score)."""
    if isinstance(result, AudioError):
        return f"{path:<{width}}  {'-':>7}  error: {result.reason}"
    lines = [f"{path:<{width}}  {result.duration:>7.1f}  {_tags_text(result.tags)}"]
    if len(result.windows) > 1:
        lines += [f"{'':<{width}}  {_span(e)}  {e['label']} {e['score']:.2f}" for e in result.events]
        if not result.events:
            lines.append(f"{'':<{width}}  {'':>7}  (no sound reached the threshold in any window)")
    return "\n".join(lines)


def _span(event: dict) -> str:
    return f"{event['start']:>7.1f}-{event['end']:<7.1f}"


def _tags_text(tags: list[dict]) -> str:
    return "  ".join(f"{t['label']} {t['score']:.2f}" for t in tags)


COMMANDS = {"download": cmd_download, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "onnx": cmd_onnx, "tag": cmd_tag, "export": cmd_export, "search": cmd_search, "similar": cmd_similar,
            "qa": cmd_qa, "calibrate": cmd_calibrate, "app": cmd_app}


if __name__ == "__main__":
    sys.exit(main())
