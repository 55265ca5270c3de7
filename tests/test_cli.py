import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY

from soundtag.cli import main


@pytest.mark.parametrize("command", [[], ["download"], ["train"], ["evaluate"]])
def test_help_teaches(command: list, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: soundtag" in text and len(text) > 300


def test_console_script_is_installed() -> None:
    proc = subprocess.run([sys.executable, "-m", "soundtag.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "download" in proc.stdout


def test_train_then_evaluate(tone_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["train", "--data", str(tone_dataset), "--out", str(out), "--folds", "1", "--preset", "smoke",
                 *TINY, "train.epochs=2"]) == 0
    printed = capsys.readouterr().out
    assert "mean" in printed and (out / "summary.json").exists()
    accuracy = json.loads((out / "summary.json").read_text())["accuracy_mean"]
    assert main(["evaluate", str(out)]) == 0
    assert f"{accuracy:.4f}" in capsys.readouterr().out
    assert main(["train", "--data", str(tone_dataset), "--out", str(out), "--resume"]) == 0  # all folds done


@pytest.mark.parametrize(("args", "message"), [
    (["train", "--out", "R", "train.bogus=1"], "unknown key 'train.bogus'"),
    (["train", "--out", "R", "train.epochs=many"], "not a valid int"),
    (["train", "--data", "no/such/folder", "--out", "R"], "no/such/folder: not found"),
    (["train", "--out", "R", "--folds", "9"], "fold 9 does not exist"),
    (["evaluate", "no/such/run"], "no config.json"),
    (["download", "--root", "ROOT", "--url", "http://127.0.0.1:9/x.zip"], "cannot download ESC-50"),
])
def test_user_errors_are_one_line(args: list, message: str, tone_dataset: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if "--data" not in args and args[0] == "train":
        args = [*args, "--data", str(tone_dataset)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_fold_list_is_an_argument_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--out", "R", "--folds", "one"])
    assert "fold numbers separated by commas" in capsys.readouterr().err
