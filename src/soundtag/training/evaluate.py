"""Evaluation: recompute every metric of a run from its saved fold models, write reports and plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from soundtag.features.logmel import LogMel
from soundtag.models.cnn import SoundCNN, load_model, predict_logits
from soundtag.training import thresholds
from soundtag.training.augment import mix_at
from soundtag.training.config import from_dict
from soundtag.training.dataset import load_dataset
from soundtag.training.feature_cache import AudioSetScores, build_features

PROTOCOL = ("Cross-validation over the dataset's folds (for ESC-50, its 5 official folds): for each test fold, one "
            "model is trained from scratch on the other folds with a fixed schedule (no early stopping, no "
            "checkpoint selection) and evaluated once on the held-out fold, single 5-s crop, no test-time "
            "augmentation. Accuracy and macro F1 are per fold, then mean ± std (population) over folds; the "
            "per-class report and confusion matrix pool the predictions of all folds.")


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, out: str | Path | None = None,
                 audioset_weight: float | None = None) -> dict:
    """Score each `fold{k}/` model on fold k, write the reports into `out` (default `run_dir`), return the summary.
    With `audioset_weight` (default: the fold models' own setting), each model's scores are fused with YAMNet's
    zero-shot scores of the same clips (`soundtag.models.yamnet`), as `Classifier` fuses them."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"{run_dir}: no config.json here; is this a folder written by `soundtag train`?")
    config = from_dict(json.loads((run_dir / "config.json").read_text()))
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    data = Path(data or info.get("data", "data/ESC-50"))
    dataset = load_dataset(data)
    cache = data if data.is_dir() else data.parent
    power = torch.from_numpy(build_features(dataset, config.audio, config.frontend, cache / ".soundtag-cache"))
    frontend = LogMel(config.frontend)
    mels = frontend.compress(power)
    fold_dirs = sorted(run_dir.glob("fold*/model.safetensors"))
    if not fold_dirs:
        raise FileNotFoundError(f"{run_dir}: no trained folds (fold*/model.safetensors); has training finished?")
    if audioset_weight is None:
        audioset_weight = load_model(fold_dirs[0].parent).inference.audioset_weight
    audioset = AudioSetScores(dataset, config.audio, cache, audioset_weight) if audioset_weight else None

    folds, y_true, y_pred, rows, held_out = {}, [], [], [], {}
    rng = np.random.default_rng(thresholds.SEED)
    for weights in fold_dirs:
        k = int(weights.parent.name.removeprefix("fold"))
        _, test_idx = dataset.split(k)
        model = load_model(weights.parent).model
        probs = model.scores(predict_logits(model, mels[test_idx])).numpy()
        pairs = thresholds.mixture_pairs(dataset.labels[test_idx], rng)
        held_out[k] = _held_out_scores(model, power[test_idx], dataset.labels[test_idx], probs, frontend, pairs)
        if audioset is not None:
            probs = audioset.fuse(test_idx, probs)
            held_out[k] = (audioset.fuse_held_out(test_idx, held_out[k][0], pairs), held_out[k][1])
        pred, true = probs.argmax(1), dataset.labels[test_idx]
        folds[k] = {"accuracy": accuracy_score(true, pred), "macro_f1": f1_score(true, pred, average="macro"),
                    "clips": len(test_idx), "train_seconds": _train_seconds(weights.parent)}
        y_true.append(true)
        y_pred.append(pred)
        rows += [{"file": dataset.paths[i].name, "fold": k, "label": dataset.classes[t],
                  "predicted": dataset.classes[p], "score": round(float(s), 5)}
                 for i, t, p, s in zip(test_idx, true, pred, probs.max(1))]
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    summary = _summary(folds, config.to_dict(), info)
    summary["audioset_weight"] = audioset_weight
    summary["threshold"] = thresholds.choose_threshold(*map(np.concatenate, zip(*held_out.values())))
    summary["threshold_without_fold"] = {str(k): t for k, t in thresholds.nested(held_out).items()}
    summary["threshold_protocol"] = thresholds.__doc__.split("\n\n")[0].replace("\n", " ")
    out = Path(out or run_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_reports(out, dataset.classes, y_true, y_pred, rows, summary)
    plot_curves(run_dir, out / "curves.png")
    return summary


def compare(saved: dict, new: dict, tolerance: float = 0.005) -> list[str]:
    """How a re-derived summary differs from a saved one beyond `tolerance` (accuracy and macro F1 per fold, as
    fractions; the default is 2 clips in 400), one line per difference; empty when they agree. Scores computed on
    other hardware differ in the fifth decimal, which can move an argmax between near-tied classes."""
    lines = [f"fold {k}: saved but not re-derived" for k in saved["folds"] if k not in new["folds"]]
    for k, fold in new["folds"].items():
        for metric in ("accuracy", "macro_f1"):
            old = saved["folds"].get(k, {}).get(metric)
            if old is None or abs(fold[metric] - old) > tolerance:
                lines.append(f"fold {k} {metric}: saved {old}, re-derived {fold[metric]:.4f}")
    return lines


def _held_out_scores(model: SoundCNN, power: torch.Tensor, labels: np.ndarray, clean: np.ndarray, frontend: LogMel,
                     pairs: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Scores and two-hot targets `(2 * clips, classes)`: each held-out clip alone (`clean`), then mixed with
    another held-out clip of a different class, `pairs` = (partner indices, partner levels in dB); see
    `soundtag.training.thresholds`."""
    partners, db = pairs
    mixed = mix_at(power, power[partners], torch.from_numpy(db).float())
    scores = np.concatenate([clean, model.scores(predict_logits(model, frontend.compress(mixed))).numpy()])
    eye = np.eye(clean.shape[1], dtype=np.float32)
    return scores, np.concatenate([eye[labels], np.maximum(eye[labels], eye[labels[partners]])])


def _train_seconds(fold_dir: Path) -> float:
    with (fold_dir / "log.csv").open() as f:
        return round(sum(float(r["seconds"]) for r in csv.DictReader(f)), 1)


def _summary(folds: dict, config: dict, info: dict) -> dict:
    acc = np.array([f["accuracy"] for f in folds.values()])
    f1 = np.array([f["macro_f1"] for f in folds.values()])
    return {"protocol": PROTOCOL, "folds": folds,
            "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()),
            "macro_f1_mean": float(f1.mean()), "macro_f1_std": float(f1.std()),
            "train_wall_seconds": round(sum(f["train_seconds"] for f in folds.values()), 1),
            "seed": config["train"]["seed"], "git_commit": info.get("git_commit"),
            "machine": info.get("machine"), "torch": info.get("torch"), "config": config}


def _write_reports(out: Path, classes: list[str], y_true: np.ndarray, y_pred: np.ndarray, rows: list[dict],
                   summary: dict) -> None:
    labels = np.arange(len(classes))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    np.save(out / "confusion.npy", cm)
    with (out / "confusion.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true\\predicted", *classes])
        writer.writerows([name, *row] for name, row in zip(classes, cm.tolist()))
    p, r, f1, n = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    report = [{"class": c, "precision": round(float(a), 4), "recall": round(float(b), 4), "f1": round(float(d), 4),
               "support": int(e)} for c, a, b, d, e in zip(classes, p, r, f1, n)]
    _write_csv(out / "per_class.csv", report)
    _write_csv(out / "predictions.csv", rows)
    lines = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {x['class']} | {x['precision']:.3f} | {x['recall']:.3f} | {x['f1']:.3f} | {x['support']} |"
              for x in sorted(report, key=lambda x: -x["f1"])]
    (out / "per_class.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_confusion(cm, classes, out / "confusion.png")


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_confusion(cm: np.ndarray, classes: list[str], path: Path) -> None:
    """Row-normalised confusion matrix with class names and the count in every non-empty cell."""
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = max(6.0, 0.32 * len(classes) + 3)
    fig = Figure(figsize=(size, size * 0.92))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    for i, j in zip(*np.nonzero(cm)):
        ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=5,
                color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (all test folds pooled; colour = share of the true class)")
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def plot_curves(run_dir: Path, path: Path) -> None:
    """Training loss per epoch, mean over folds with a band from the lowest to the highest fold; and validation
    accuracy beside it only when a validation fold was held out."""
    logs = []
    for log in sorted(run_dir.glob("*/log.csv")):
        with log.open() as f:
            logs.append(list(csv.DictReader(f)))
    logs = [rows for rows in logs if rows]
    validated = [rows for rows in logs if rows[0].get("val_acc")]
    fig = Figure(figsize=(11 if validated else 6, 4))
    axes = fig.subplots(1, 2 if validated else 1, squeeze=False)[0]
    _band(axes[0], logs, "train_loss", f"mean of {len(logs)} folds" if len(logs) > 1 else "")
    axes[0].set(xlabel="epoch", ylabel="binary cross-entropy (mixtures and conditions)", title="Training loss")
    if validated:
        _band(axes[1], validated, "val_acc", "")
        axes[1].set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy (held-out training fold)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _band(ax: object, logs: list[list[dict]], column: str, label: str) -> None:
    """One column of the fold logs over epochs: the mean over folds inside a band from the lowest to the highest."""
    epochs = min(len(rows) for rows in logs) if logs else 0
    if not epochs:
        return
    values = np.array([[float(r[column]) for r in rows[:epochs]] for rows in logs])
    x = np.arange(1, epochs + 1)
    ax.plot(x, values.mean(0), label=label or None)
    if len(values) > 1:
        ax.fill_between(x, values.min(0), values.max(0), alpha=0.25, label="lowest to highest fold")
        ax.legend()
