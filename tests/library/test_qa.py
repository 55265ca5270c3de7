import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, tiny_bundle

from soundtag.inference.classifier import Classifier
from soundtag.interfaces.cli import main
from soundtag.library.ingest import tag_library
from soundtag.library.qa import QAConfig, QAError, check_catalog, expected_labels, read_rules
from soundtag.models.cnn import load_model, save_model
from soundtag.training.calibrate import out_of_fold
from soundtag.training.dataset import load_dataset

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def shipped() -> Classifier:
    return Classifier.load()  # the shipped model knows the ESC-10 example clips well


def make_deliveries(root: Path) -> dict[str, str]:
    """Clean ESC-10 clips, and one planted problem per file in a rain folder; returns file -> planted check.
    (The rain example is not among the clean ones: like about 5% of real clips by design, it scores as unfamiliar.)"""
    for folder, name in {"foley/dogs": "dog", "ambience/sea": "sea_waves", "people": "crying_baby", "farm": "rooster",
                         "office": "clock_tick"}.items():
        (root / folder).mkdir(parents=True)
        shutil.copy(EXAMPLES / f"{name}.flac", root / folder / f"{name}.flac")
    (root / "ambience/rain").mkdir()
    rain, sr = sf.read(EXAMPLES / "rain.flac", dtype="float32")
    t = np.arange(5 * sr) / sr
    planted = {
        "ambience/rain/dog_in_rain.flac": (sf.read(EXAMPLES / "dog.flac", dtype="float32")[0], "unexpected"),
        "ambience/rain/clipped.flac": (np.clip(20 * rain, -1, 1), "clipped"),
        "ambience/rain/dc.flac": (rain + 0.05, "dc_offset"),
        "ambience/rain/silent.flac": (np.zeros(5 * sr, np.float32), "silent"),
        "ambience/rain/test_tone.flac": (0.3 * np.sin(2 * np.pi * 1000 * t), "unfamiliar"),
    }
    for name, (audio, _) in planted.items():
        sf.write(root / name, audio, sr)
    (root / "ambience/rain/broken.flac").write_bytes(b"fLaC" + bytes(64))
    return {name: check for name, (_, check) in planted.items()} | {"ambience/rain/broken.flac": "unreadable"}


RULES = "# folder: labels\nfoley/dogs: dog\nambience/rain: rain, water_drops\nambience/*: sea_waves, rain\n"


def test_planted_problems_are_flagged_and_clean_files_are_not(shipped: Classifier, tmp_path: Path) -> None:
    planted = make_deliveries(tmp_path / "lib")
    (tmp_path / "rules.txt").write_text(RULES)
    db = tmp_path / "catalog.db"
    tag_library([tmp_path / "lib"], db, shipped, workers=0)
    config = QAConfig(rules=read_rules(tmp_path / "rules.txt"), max_ood=float(shipped.ood_stats["threshold"]))
    flags, checked = check_catalog(db, config)
    assert checked == 11
    by_file: dict[str, set[str]] = {}
    for flag in flags:
        by_file.setdefault(str(Path(flag.path).relative_to((tmp_path / "lib").resolve())), set()).add(flag.check)
    for name, check in planted.items():
        assert check in by_file.pop(name), name
    assert by_file == {}  # the five clean clips raise nothing
    unexpected = next(f for f in flags if f.check == "unexpected")
    assert "dog" in unexpected.detail and "0.0-5.0 s" in unexpected.detail


def test_cli_table_csv_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "clean" / "dogs").mkdir(parents=True)
    shutil.copy(EXAMPLES / "dog.flac", tmp_path / "clean" / "dogs")
    assert main(["qa", str(tmp_path / "clean"), "--expect", "dog"]) == 0
    assert "0 of 1 files flagged" in capsys.readouterr().err
    out = tmp_path / "flags.csv"
    assert main(["qa", str(tmp_path / "clean"), "--expect", "rain", "--csv", str(out)]) == 1
    assert "unexpected" in capsys.readouterr().out
    assert [r["check"] for r in csv.DictReader(out.open())] == ["unexpected"]
    db = str(tmp_path / "catalog.db")
    assert main(["qa", str(tmp_path / "clean"), "--db", db, "--expect", "dog"]) == 0  # tags into the catalog
    assert main(["qa", "--db", db, "--expect", "rain"]) == 1  # checks what the catalog holds
    assert "unexpected" in capsys.readouterr().out
    assert main(["qa", str(tmp_path / "clean"), "--expect", "unicorn"]) == 2
    assert "unknown label(s) unicorn" in capsys.readouterr().err
    assert main(["qa"]) == 2


def test_rules_pick_the_most_specific_folder(tmp_path: Path) -> None:
    (tmp_path / "rules.txt").write_text(RULES)
    config = QAConfig(rules=read_rules(tmp_path / "rules.txt"))
    assert expected_labels("/lib/ambience/rain/a.wav", config) == {"rain", "water_drops"}
    assert expected_labels("/lib/ambience/sea/deep/a.wav", config) == {"sea_waves", "rain"}
    assert expected_labels("/lib/people/a.wav", config) is None
    assert expected_labels("/lib/people/a.wav", QAConfig(expect=("laughing",))) == {"laughing"}
    (tmp_path / "bad.txt").write_text("foley/dogs dog\n")
    with pytest.raises(QAError, match=r"bad\.txt:1"):
        read_rules(tmp_path / "bad.txt")


def test_unsure_uses_the_best_tag(shipped: Classifier, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    shutil.copy(EXAMPLES / "rooster.flac", tmp_path / "lib")
    tag_library([tmp_path / "lib"], tmp_path / "c.db", shipped, workers=0)
    assert check_catalog(tmp_path / "c.db", QAConfig(unsure_score=0.5))[0] == []
    (flag,), _ = check_catalog(tmp_path / "c.db", QAConfig(unsure_score=1.01))  # above any score
    assert flag.check == "unsure"


def test_calibrate_sets_the_threshold_from_held_out_folds(tone_dataset: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    dataset = load_dataset(tone_dataset)
    for k in sorted(set(dataset.folds.tolist())):
        save_model(tmp_path / "cv" / f"fold{k}", tiny_bundle(dataset.classes))
    save_model(tmp_path / "full", tiny_bundle(dataset.classes))
    args = ["calibrate", "--data", str(tone_dataset), "--cv", str(tmp_path / "cv"), "--model", str(tmp_path / "full")]
    assert main([*args, "--quantile", "90"]) == 2  # the run has not been evaluated: no decision threshold yet
    assert "run `soundtag evaluate" in capsys.readouterr().err
    (tmp_path / "cv" / "summary.json").write_text(json.dumps({"threshold": 0.37}))
    assert main([*args, "--quantile", "90"]) == 0
    assert "present from score 0.37; unfamiliar above distance" in capsys.readouterr().out
    assert load_model(tmp_path / "full").inference.threshold == 0.37
    held_out = np.concatenate([d for _, _, d in out_of_fold(tone_dataset, tmp_path / "cv")])
    assert len(held_out) == len(dataset)
    clf = Classifier.load(tmp_path / "full")
    assert float(clf.ood_stats["threshold"]) == pytest.approx(np.percentile(held_out, 90), rel=1e-5)
    assert main([*args, "--quantile", "100"]) == 2
    (tmp_path / "nowhere").mkdir()
    (tmp_path / "nowhere" / "summary.json").write_text(json.dumps({"threshold": 0.37}))
    assert main([*args[:3], "--cv", str(tmp_path / "nowhere"), *args[5:]]) == 2
    assert "no fold models" in capsys.readouterr().err
