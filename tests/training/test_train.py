import csv
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY

from soundtag.models.cnn import load_model
from soundtag.training import train
from soundtag.training.config import PRESETS, ConfigError, make_config
from soundtag.training.train import loss_fn, lr_at, prefetched, run


def read_log(fold_dir: Path) -> list[dict]:
    with (fold_dir / "log.csv").open() as f:
        return list(csv.DictReader(f))


def test_loss_falls_and_artefacts_appear(tone_dataset: Path, tmp_path: Path) -> None:
    clean = [f"{k}={v}" for k, v in PRESETS["clean"].items()]  # the loop itself: no mixtures or conditions
    cfg = make_config("smoke", overrides=[*TINY, *clean, "train.epochs=25", "train.lr=0.01", "train.val_fold=5"])
    out = run(cfg, tone_dataset, tmp_path / "run", folds=[1])
    log = read_log(out / "fold1")
    assert len(log) == 25 and float(log[-1]["train_loss"]) < 0.8 * float(log[0]["train_loss"])
    assert float(log[-1]["val_acc"]) >= 0.5  # chance is 1/3
    assert {p.name for p in (out / "fold1").iterdir()} == {"log.csv", "model.json", "model.safetensors"}
    assert json.loads((out / "config.json").read_text())["model"]["n_classes"] == 3
    info = json.loads((out / "run.json").read_text())
    assert {"git_commit", "machine", "torch"} <= set(info)
    assert info["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", info["git_commit"])
    assert load_model(out / "fold1").classes == ["clicks", "noise", "tone"]


def test_resumed_run_equals_uninterrupted(tone_dataset: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config("smoke", overrides=[*TINY, "train.epochs=4"])
    whole = run(cfg, tone_dataset, tmp_path / "whole", folds=[2])

    real_write_log = train._write_log

    def crash_after_two_epochs(path: Path, log: list) -> None:
        real_write_log(path, log)
        if len(log) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train, "_write_log", crash_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tone_dataset, tmp_path / "cut", folds=[2])
    assert (tmp_path / "cut" / "fold2" / "checkpoint.pt").exists()
    monkeypatch.setattr(train, "_write_log", real_write_log)
    with pytest.raises(ConfigError, match="--resume"):
        run(cfg, tone_dataset, tmp_path / "cut", folds=[2])
    resumed = run(cfg, tone_dataset, tmp_path / "cut", folds=[2], resume=True)

    a, b = load_model(whole / "fold2").model.state_dict(), load_model(resumed / "fold2").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [[r["train_loss"] for r in read_log(run_dir / "fold2")] for run_dir in (whole, resumed)]
    assert losses[0] == losses[1]


def test_resume_refuses_a_different_config(tone_dataset: Path, tmp_path: Path) -> None:
    cfg = make_config("smoke", overrides=[*TINY, "train.epochs=1"])
    run(cfg, tone_dataset, tmp_path / "r", folds=[1])
    other = make_config("smoke", overrides=[*TINY, "train.epochs=2"])
    with pytest.raises(ConfigError, match="different config"):
        run(other, tone_dataset, tmp_path / "r", folds=[1], resume=True)


@pytest.mark.parametrize(("folds", "overrides", "message"), [
    ([7], [], "fold 7 does not exist"),
    ([1], ["train.val_fold=1"], "also a test fold"),
    ([1], ["train.val_fold=9"], "fold 9 does not exist"),
])
def test_bad_folds(tone_dataset: Path, tmp_path: Path, folds: list, overrides: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run(make_config("smoke", overrides=[*TINY, *overrides]), tone_dataset, tmp_path / "r", folds=folds)


def test_loss_fn_multilabel_and_softmax() -> None:
    logits = torch.tensor([[4.0, 4.0, -4.0], [0.0, 0.0, 0.0]])
    both = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert loss_fn(logits[:1], both[:1], "sigmoid") < 0.05  # two sounds, both scored high: nearly no loss
    assert loss_fn(logits, both, "sigmoid") > loss_fn(logits[:1], both[:1], "sigmoid")
    # softmax: a two-sound target becomes (0.5, 0.5, 0); an example without any target is left out
    expected = torch.nn.functional.cross_entropy(logits[:1], torch.tensor([[0.5, 0.5, 0.0]]))
    torch.testing.assert_close(loss_fn(logits, both, "softmax"), expected)


def test_prefetched_batches_come_in_order_with_the_same_draws() -> None:
    def batches(ahead: int) -> list:
        rng = np.random.default_rng(0)
        return list(prefetched(lambda n: (n, rng.random(3)), range(10), ahead))
    plain = batches(0)
    for ahead in (1, 4, 20):
        got = batches(ahead)
        assert [n for n, _ in got] == list(range(10))
        np.testing.assert_array_equal(np.stack([r for _, r in got]), np.stack([r for _, r in plain]))


def test_more_processes_than_gpus_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ConfigError, match="no GPU of its own"):
        train.pick_device()


def test_schedule_warms_up_then_decays() -> None:
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0) and lrs[-1] < 0.01
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun not installed beside this Python")
def test_torchrun_two_cpu_processes(tone_dataset: Path, tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "soundtag.interfaces.cli", "train", "--data",
           str(tone_dataset), "--out", str(tmp_path / "ddp"), "--folds", "1", "--preset", "smoke",
           *TINY, "train.epochs=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # CPU processes on a GPU machine too
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(read_log(tmp_path / "ddp" / "fold1")) == 2
    assert (tmp_path / "ddp" / "summary.json").exists()


def test_one_fold_is_refused_and_full_takes_a_validation_fold(tone_dataset: Path, tmp_path: Path) -> None:
    rows = [f"{p},{p.parent.name},1" for p in sorted(tone_dataset.rglob("*.wav"))]
    (tmp_path / "one_fold.csv").write_text("path,label,fold\n" + "\n".join(rows) + "\n")
    cfg = make_config("smoke", overrides=[*TINY, "train.epochs=1"])
    with pytest.raises(ConfigError, match="leaves no clips to train on"):
        run(cfg, tmp_path / "one_fold.csv", tmp_path / "r")
    assert not (tmp_path / "r").exists()  # refused before anything was written
    with_val = make_config("smoke", overrides=[*TINY, "train.epochs=1", "train.val_fold=2"])
    out = run(with_val, tone_dataset, tmp_path / "full", full=True)
    assert read_log(out / "full")[0]["val_acc"] != ""


def test_fold_models_never_see_their_test_fold(tone_dataset: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Fold model k trains on the other folds only and is scored on fold k alone (predictions.csv)."""
    from soundtag.training.dataset import load_dataset
    from soundtag.training.evaluate import evaluate_run

    trained_on = {}
    real = train.train_fold

    def spy(cfg: object, power: torch.Tensor, labels: torch.Tensor, train_idx: object, *args: object) -> object:
        trained_on[args[1]] = set(train_idx.tolist())  # args: val_idx, out, name, rooms
        return real(cfg, power, labels, train_idx, *args)

    monkeypatch.setattr(train, "train_fold", spy)
    out = run(make_config("smoke", overrides=[*TINY, "train.epochs=1"]), tone_dataset, tmp_path / "run", folds=[1, 2])
    dataset = load_dataset(tone_dataset)
    for k in (1, 2):
        assert not trained_on[out / f"fold{k}"] & set(dataset.split(k)[1].tolist())
        assert trained_on[out / f"fold{k}"] == set(dataset.split(k)[0].tolist())
    evaluate_run(out)
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    fold_of = {p.name: int(k) for p, k in zip(dataset.paths, dataset.folds)}
    assert rows and all(fold_of[r["file"]] == int(r["fold"]) for r in rows)
    assert sorted({int(r["fold"]) for r in rows}) == [1, 2] and len(rows) == sum(dataset.folds <= 2)


def test_resume_continues_the_folds_that_were_started_and_refuses_others(tone_dataset: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config("smoke", overrides=[*TINY, "train.epochs=2"])
    real_write_log = train._write_log

    def crash(path: Path, log: list) -> None:
        real_write_log(path, log)
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "_write_log", crash)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tone_dataset, tmp_path / "r", folds=[1, 2])
    monkeypatch.setattr(train, "_write_log", real_write_log)
    assert train.run_plan(tmp_path / "r") == {"folds": [1, 2], "full": False}
    with pytest.raises(ConfigError, match=r"started with --folds 1,2.*drop --folds 3"):
        run(cfg, tone_dataset, tmp_path / "r", folds=[3], resume=True)
    with pytest.raises(ConfigError, match="drop --full"):
        run(cfg, tone_dataset, tmp_path / "r", full=True, resume=True)
    run(cfg, tone_dataset, tmp_path / "r", resume=True)  # as `soundtag train --out r --resume` calls it
    assert sorted(p.name for p in (tmp_path / "r").glob("fold*")) == ["fold1", "fold2"]
    assert all((tmp_path / "r" / f"fold{k}" / "model.safetensors").exists() for k in (1, 2))
