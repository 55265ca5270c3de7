import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import TINY, tiny_bundle

import soundtag
from soundtag.interfaces.cli import COMMANDS, main


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)])
def test_help_teaches(command: list, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: soundtag" in text and len(text) > 300


def test_console_script_is_installed() -> None:
    proc = subprocess.run([sys.executable, "-m", "soundtag.interfaces.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "download" in proc.stdout


def test_help_does_not_import_torch() -> None:
    """`soundtag --help` and every command's help answer at once: the heavy modules load when a command runs."""
    code = ("import sys\nfrom soundtag.interfaces.cli import COMMANDS, build_parser\nparser = build_parser()\n"
            "for name in ['', *COMMANDS]:\n"
            "    try:\n        parser.parse_args([name, '--help'] if name else ['--help'])\n"
            "    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'scipy', 'sklearn', 'matplotlib') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_train_then_evaluate(tone_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["train", "--data", str(tone_dataset), "--out", str(out), "--folds", "1", "--preset", "smoke",
                 *TINY, "train.epochs=2"]) == 0
    printed = capsys.readouterr().out
    assert "mean" in printed and (out / "summary.json").exists()
    accuracy = json.loads((out / "summary.json").read_text())["accuracy_mean"]
    assert main(["evaluate", str(out)]) == 0
    assert f"{accuracy:.4f}" in capsys.readouterr().out
    saved = (out / "summary.json").read_bytes()
    assert main(["evaluate", str(out), "--out", str(tmp_path / "again"), "--check"]) == 0  # a reproduction
    assert "matches the saved summary" in capsys.readouterr().err
    assert (out / "summary.json").read_bytes() == saved and (tmp_path / "again" / "summary.json").exists()
    tampered = json.loads(saved)
    tampered["folds"]["1"]["accuracy"] += 0.1
    (out / "summary.json").write_text(json.dumps(tampered))
    assert main(["evaluate", str(out), "--out", str(tmp_path / "again"), "--check"]) == 1
    assert "fold 1 accuracy" in capsys.readouterr().err
    (out / "summary.json").write_bytes(saved)
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


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from soundtag.models.cnn import save_model
    from soundtag.models.inference_config import InferenceConfig

    out = tmp_path_factory.mktemp("model")
    every_sound_an_event = InferenceConfig(threshold=0.05)
    save_model(out, replace(tiny_bundle(["bell", "hum", "rain"]), inference=every_sound_an_event))
    return out


@pytest.fixture
def clips(tmp_path: Path) -> list[str]:
    import soundfile as sf
    from conftest import tone

    sf.write(tmp_path / "short.wav", tone(440.0, 16000, 2.0), 16000)
    sf.write(tmp_path / "long.flac", tone(440.0, 16000, 9.0), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    return [str(tmp_path / n) for n in ("short.wav", "broken.wav", "long.flac", "absent.mp3")]


def test_predict_table(model_dir: Path, clips: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", *clips, "--model", str(model_dir), "--top-k", "2"]) == 1
    out, err = capsys.readouterr()
    assert re.search(r"short.wav +2.0  ", out) and re.search(r"long.flac +9.0  ", out)
    assert re.search(r" 0\.0-9\.0 +bell 0\.\d\d\n", out)  # the long file's events, each over its whole length
    assert "error: file not found" in out and "error: truncated or corrupt" in out
    assert "2 of 4 files could not be tagged" in err


def test_the_table_names_every_sound_present(clips: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
                                             ) -> None:
    """A model whose own top-k is 2, with all three sounds at or above its threshold: its table names all three
    unless --top-k asks for fewer; below the threshold it names its top 2."""
    from soundtag.models.cnn import save_model
    from soundtag.models.inference_config import InferenceConfig

    save_model(tmp_path / "m", replace(tiny_bundle(["bell", "hum", "rain"]), inference=InferenceConfig(
        threshold=0.05, top_k=2)))
    tags = lambda: len(re.findall(r"(bell|hum|rain) 0\.\d\d", capsys.readouterr().out))  # noqa: E731
    main(["predict", clips[0], "--model", str(tmp_path / "m")])
    assert tags() == 3
    main(["predict", clips[0], "--model", str(tmp_path / "m"), "--top-k", "1"])
    assert tags() == 1
    main(["predict", clips[0], "--model", str(tmp_path / "m"), "--threshold", "0.9"])
    assert tags() == 2


def test_predict_json_lines(model_dir: Path, clips: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", *clips, "--model", str(model_dir), "--json", "--window", "3", "--hop", "3"]) == 1
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in records] == clips
    assert len(records[0]["tags"]) == 3 and records[0]["windows"][0] == {"start": 0.0, "end": 2.0,
                                                                         "tags": records[0]["tags"]}
    assert [w["start"] for w in records[2]["windows"]] == [0.0, 3.0, 6.0]
    assert {(e["label"], e["start"], e["end"]) for e in records[2]["events"]} == {
        (c, 0.0, 9.0) for c in ("bell", "hum", "rain")}
    assert "error" in records[1] and records[3]["error"] == "file not found"


def test_predict_draws_each_files_timeline(model_dir: Path, clips: list[str], tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    import shutil

    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(clips[0], other / "short.wav")  # two files of the same name: two pictures
    assert main(["predict", clips[0], str(other / "short.wav"), clips[1], "--model", str(model_dir),
                 "--plots", str(tmp_path / "plots")]) == 1
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["short-2.png", "short.png"]  # none for broken
    assert "timeline: " in capsys.readouterr().err


def test_inference_settings_are_checked_and_a_foreign_window_noted(model_dir: Path, clips: list[str],
                                                                   capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", clips[0], "--model", str(model_dir), "--hop", "9"]) == 2
    assert "hop <= window" in capsys.readouterr().err
    assert main(["predict", clips[0], "--model", str(model_dir), "--threshold", "1.5"]) == 2
    assert "threshold must lie between 0 and 1" in capsys.readouterr().err
    assert main(["predict", clips[0], "--model", str(model_dir), "--window", "2", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "trained on 5-s clips" in err and json.loads(out)["windows"][0]["end"] == 2.0


def test_predict_all_good_exits_zero(model_dir: Path, clips: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", clips[0], "--model", str(model_dir)]) == 0
    assert main(["predict", clips[0], "--model", str(model_dir / "nowhere")]) == 2
    assert "model.json: missing" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--top-k", "0"], ["--window", "-1"], ["--hop", "abc"]])
def test_predict_rejects_non_positive_numbers(flag: list, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "x.wav", *flag])
    assert "expected a positive" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"soundtag {soundtag.__version__}"



def test_a_tampered_model_is_one_line(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    shutil.copytree(model_dir, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not weights")
    assert main(["predict", "x.wav", "--model", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "unreadable weights" in err and len(err.strip().splitlines()) == 1
