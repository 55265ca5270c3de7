import csv
import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_folder_dataset, write_fake_esc50

from soundtag.audio.load import AudioConfig
from soundtag.features.logmel import FrontendConfig
from soundtag.training.dataset import DatasetError, download_esc50, load_dataset

AUDIO, FRONTEND = AudioConfig(duration=0.5), FrontendConfig()


def test_fake_esc50_is_valid(fake_esc50: Path) -> None:
    ds = load_dataset(fake_esc50)
    assert len(ds) == 2000 and len(ds.classes) == 50
    assert np.bincount(ds.labels).tolist() == [40] * 50
    train, test = ds.split(3)
    assert len(train) == 1600 and len(test) == 400 and set(ds.folds[test]) == {3}


def test_real_esc50_is_valid(real_esc50: Path) -> None:
    ds = load_dataset(real_esc50)
    assert len(ds) == 2000 and ds.classes[0] == "dog" and sorted(set(ds.folds)) == [1, 2, 3, 4, 5]


def test_missing_audio_is_named(tmp_path: Path) -> None:
    root = write_fake_esc50(tmp_path / "ESC-50")
    victim = sorted((root / "audio").iterdir())[7]
    victim.unlink()
    with pytest.raises(DatasetError, match=f"1 audio files missing.*{victim.name}"):
        load_dataset(root)


def test_wrong_counts_are_reported(tmp_path: Path) -> None:
    root = write_fake_esc50(tmp_path / "ESC-50")
    meta = root / "meta" / "esc50.csv"
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join(lines[:-1]) + "\n")  # drop one clip of class 49, fold 5
    with pytest.raises(DatasetError, match=r"1999 rows.*class_49.*39.*fold"):
        load_dataset(root)


def test_missing_metadata_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"not found.*soundtag download"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no audio found"):
        load_dataset(tmp_path / "empty")


def test_folder_per_class(tmp_path: Path) -> None:
    ds = load_dataset(make_folder_dataset(tmp_path / "mine"))
    assert ds.classes == ["bell", "hum"] and len(ds) == 12
    assert sorted(np.bincount(ds.folds)[1:].tolist()) == [2, 2, 2, 2, 4]  # 6 per class, round-robin over 5 folds


def test_csv_with_and_without_folds(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "mine")
    with (root / "list.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "fold"])
        writer.writerows([f"{c}/{i}.wav", c, i % 3 + 1] for c in ("bell", "hum") for i in range(6))
    ds = load_dataset(root / "list.csv")
    assert sorted(set(ds.folds.tolist())) == [1, 2, 3] and ds.paths[0] == root / "bell" / "0.wav"
    (root / "nofold.csv").write_text("path,label\nbell/0.wav,bell\nhum/0.wav,hum\n")
    assert load_dataset(root / "nofold.csv").folds.tolist() == [1, 1]
    with pytest.raises(DatasetError, match="fold 9 does not exist"):
        ds.split(9)


@pytest.mark.parametrize(("text", "reason"), [
    ("file,tag\na.wav,x\n", "header"),
    ("path,label\nghost.wav,x\n", "1 listed files do not exist.*ghost.wav"),
    ("path,label,fold\nbell/0.wav,bell,one\n", "whole numbers"),
])
def test_bad_csv(tmp_path: Path, text: str, reason: str) -> None:
    root = make_folder_dataset(tmp_path / "mine")
    (root / "bad.csv").write_text(text)
    with pytest.raises(DatasetError, match=reason):
        load_dataset(root / "bad.csv")


def make_archive(tmp_path: Path) -> tuple[str, str]:
    """A zip shaped like the official one (ESC-50-master/audio, ESC-50-master/meta) and its metadata MD5."""
    src = write_fake_esc50(tmp_path / "src" / "ESC-50-master")
    archive = tmp_path / "master.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(src.rglob("*")):
            zf.write(p, p.relative_to(src.parent))
    return archive.as_uri(), hashlib.md5((src / "meta" / "esc50.csv").read_bytes()).hexdigest()


def test_download_unpacks_and_verifies(tmp_path: Path) -> None:
    url, md5 = make_archive(tmp_path)
    root = download_esc50(tmp_path / "data" / "ESC-50", url, meta_md5=md5)
    assert len(load_dataset(root)) == 2000
    assert sorted(p.name for p in root.iterdir()) == ["audio", "meta"]  # archive and partial file removed
    assert download_esc50(root, "file:///unreachable.zip", meta_md5=md5) == root  # complete: no download


def test_download_rejects_a_wrong_checksum(tmp_path: Path) -> None:
    url, _ = make_archive(tmp_path)
    with pytest.raises(DatasetError, match="checksum"):
        download_esc50(tmp_path / "data", url)


@pytest.mark.parametrize("kind", ["offline", "corrupt"])
def test_download_failures_are_clear_and_clean(tmp_path: Path, kind: str) -> None:
    if kind == "offline":
        url = "http://127.0.0.1:9/ESC-50.zip"  # the discard port: connection refused
    else:
        (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 truncated")
        url = (tmp_path / "bad.zip").as_uri()
    root = tmp_path / "data" / "ESC-50"
    with pytest.raises(DatasetError, match=r"cannot download ESC-50.*offline"):
        download_esc50(root, url)
    assert list(root.iterdir()) == []
    shutil.rmtree(root)


def test_csv_with_a_byte_order_mark_is_read(tone_dataset: Path, tmp_path: Path) -> None:
    rows = [f"{p},{p.parent.name}" for p in sorted(tone_dataset.rglob("*.wav"))]
    (tmp_path / "list.csv").write_text("path,label\n" + "\n".join(rows) + "\n", encoding="utf-8-sig")
    assert load_dataset(tmp_path / "list.csv").classes == ["clicks", "noise", "tone"]


@pytest.mark.parametrize(("text", "message"), [
    ("path,label\n{a},dog\n{b},dog\n", "only one class"),
    ("path,label\n{a},dog\n{b},\n", "1 clips have no label"),
])
def test_data_nothing_can_be_learned_from_is_refused(tone_dataset: Path, tmp_path: Path, text: str,
                                                     message: str) -> None:
    a, b = sorted(tone_dataset.rglob("*.wav"))[:2]
    (tmp_path / "list.csv").write_text(text.format(a=a, b=b))
    with pytest.raises(DatasetError, match=message):
        load_dataset(tmp_path / "list.csv")


def test_latin1_csv_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_bytes("path,label\ncaf\xe9.wav,dog\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_dataset(tmp_path / "list.csv")
