import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, tiny_bundle, tone

import soundtag.audio.decode as decoder
from soundtag.errors import CatalogError
from soundtag.inference.classifier import Classifier
from soundtag.interfaces.cli import main
from soundtag.library import catalog, index, ingest
from soundtag.library.catalog import export, search
from soundtag.library.ingest import tag_library
from soundtag.library.qa import check_catalog
from soundtag.models.cnn import save_model
from soundtag.models.inference_config import InferenceConfig

CLASSES = ["bell", "hum", "rain"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained model scores each class near 1/3: with a threshold of 0.05 every sound is an event."""
    out = tmp_path_factory.mktemp("model")
    save_model(out, replace(tiny_bundle(CLASSES), inference=InferenceConfig(threshold=0.05)))
    return out


@pytest.fixture
def clf(model_dir: Path) -> Classifier:
    return Classifier.load(model_dir)


def make_library(root: Path) -> dict[str, str]:
    """Nested folders, mixed formats and lengths, plus broken files; returns the broken ones and their reasons."""
    rng = np.random.default_rng(0)
    (root / "a" / "b").mkdir(parents=True)
    (root / "c").mkdir()
    sf.write(root / "a" / "short.wav", tone(440.0, 16000, 1.0), 16000)
    sf.write(root / "a" / "b" / "long.flac", tone(880.0, 44100, 12.0), 44100)
    sf.write(root / "c" / "noise.ogg", (0.1 * rng.standard_normal(48000 * 3)).astype(np.float32), 48000)
    sf.write(root / "c" / "stereo.mp3", np.stack([tone(300.0, 22050, 6.0)] * 2, 1), 22050)
    sf.write(root / "c" / "quiet.wav", np.zeros(16000 * 5, np.float32), 16000)
    if shutil.which("ffmpeg"):
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(root / "a" / "short.wav"), str(root / "c" / "clip.m4a")],
                       check=True)
    (root / "c" / "empty.wav").write_bytes(b"")
    (root / "a" / "corrupt.flac").write_bytes(b"fLaC" + bytes(100))
    (root / "a" / "notes.txt.wav").write_text("not audio")
    (root / "a" / "readme.md").write_text("ignored: not an audio suffix")
    return {"empty.wav": "empty", "corrupt.flac": "corrupt", "notes.txt.wav": "not audio"}


def snapshot(db: Path) -> tuple[list, list]:
    conn = sqlite3.connect(db)
    assets = conn.execute("SELECT path, status, error, duration, sample_rate, channels FROM assets "
                          "ORDER BY path").fetchall()
    windows = conn.execute("SELECT a.path, start_s, end_s, label, round(score, 4) FROM window_tags w "
                           "JOIN assets a ON a.id = w.asset_id ORDER BY 1, 2, 4").fetchall()
    conn.close()
    return assets, windows


def test_every_good_file_tagged_every_bad_one_explained(clf: Classifier, tmp_path: Path) -> None:
    broken = make_library(tmp_path / "lib")
    counts = tag_library([tmp_path / "lib"], tmp_path / "cat.db", clf, workers=2, batch_files=3)
    assets, windows = snapshot(tmp_path / "cat.db")
    by_name = {Path(p).name: (status, error) for p, status, error, *_ in assets}
    assert "readme.md" not in by_name
    for name, reason in broken.items():
        assert by_name[name][0] == "error" and reason in by_name[name][1]
    good = {n for n, (s, _) in by_name.items() if s != "error"}
    assert good >= {"short.wav", "long.flac", "noise.ogg", "stereo.mp3", "quiet.wav"}
    assert by_name["quiet.wav"][0] == "silent"
    assert counts["tagged"] == len(good) and counts["failed"] == len(broken)
    long = [w for w in windows if w[0].endswith("long.flac")]
    assert sorted({(s, e) for _, s, e, _, _ in long}) == [(0.0, 5.0), (2.5, 7.5), (5.0, 10.0), (7.0, 12.0)]
    stereo = next(a for a in assets if a[0].endswith("stereo.mp3"))
    assert stereo[4:] == (22050, 2)


def test_a_file_replaced_while_it_is_decoded_is_tagged_again(clf: Classifier, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lib").mkdir()
    take = tmp_path / "lib" / "take.wav"
    sf.write(take, tone(440.0, 16000, 2.0), 16000)
    decode = ingest.decode

    def replaced_meanwhile(path: Path) -> tuple:
        decoded = decode(path)
        sf.write(take, tone(440.0, 16000, 3.0), 16000)  # the new version lands after the old one was read
        return decoded

    monkeypatch.setattr(ingest, "decode", replaced_meanwhile)
    tag_library([tmp_path / "lib"], tmp_path / "cat.db", clf, workers=0)
    monkeypatch.setattr(ingest, "decode", decode)
    assert tag_library([tmp_path / "lib"], tmp_path / "cat.db", clf, workers=0)["tagged"] == 1
    assert snapshot(tmp_path / "cat.db")[0][0][3] == 3.0


def test_rerun_skips_unchanged_and_retags_changed(clf: Classifier, tmp_path: Path) -> None:
    make_library(tmp_path / "lib")
    db = tmp_path / "cat.db"
    first = tag_library([tmp_path / "lib"], db, clf, workers=1)
    again = tag_library([tmp_path / "lib"], db, clf, workers=1)
    assert again["tagged"] == again["failed"] == 0 and again["skipped"] == first["found"]
    changed = tmp_path / "lib" / "a" / "short.wav"
    sf.write(changed, tone(440.0, 16000, 7.0), 16000)
    third = tag_library([tmp_path / "lib"], db, clf, workers=1)
    assert third["tagged"] == 1
    assets, windows = snapshot(db)
    assert next(a for a in assets if a[0] == str(changed.resolve()))[3] == 7.0
    assert len({w[1:3] for w in windows if w[0] == str(changed.resolve())}) == 2  # old single window is gone


def test_killed_run_resumes_to_the_same_catalog(clf: Classifier, model_dir: Path, tmp_path: Path) -> None:
    make_library(tmp_path / "lib")
    tag_library([tmp_path / "lib"], tmp_path / "whole.db", clf, workers=1, batch_files=2)
    slow_run = (
        "import sys, time\n"
        "from soundtag.library import ingest\n"
        "from soundtag.inference.classifier import Classifier\n"
        "write = ingest.write_asset\n"
        "ingest.write_asset = lambda *a: (time.sleep(0.3), write(*a))\n"
        f"ingest.tag_library([{str(tmp_path / 'lib')!r}], {str(tmp_path / 'cut.db')!r}, "
        f"Classifier.load({str(model_dir)!r}), workers=1, batch_files=2)\n")
    proc = subprocess.Popen([sys.executable, "-c", slow_run], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            with sqlite3.connect(tmp_path / "cut.db") as conn:
                if conn.execute("SELECT COUNT(*) FROM assets").fetchone()[0] >= 4:
                    break
        except sqlite3.OperationalError:
            pass  # not created yet
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted, _ = snapshot(tmp_path / "cut.db")
    assert 4 <= len(interrupted) < len(snapshot(tmp_path / "whole.db")[0])
    resumed = tag_library([tmp_path / "lib"], tmp_path / "cut.db", clf, workers=1, batch_files=2)
    assert resumed["skipped"] == len(interrupted)
    assert snapshot(tmp_path / "cut.db") == snapshot(tmp_path / "whole.db")


def test_events_are_stored_searched_and_exported(clf: Classifier, tmp_path: Path) -> None:
    make_library(tmp_path / "lib")
    db = tmp_path / "cat.db"
    tag_library([tmp_path / "lib"], db, clf, workers=1)
    long = tmp_path / "lib" / "a" / "b" / "long.flac"
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT e.label, e.start_s, e.end_s, e.score FROM events e JOIN assets a "
                              "ON a.id = e.asset_id WHERE a.path = ? ORDER BY e.label", (str(long),)).fetchall()
        counted = dict(conn.execute("SELECT label, COUNT(*) FROM events GROUP BY label").fetchall())
    expected = sorted(clf.analyze(long).events, key=lambda e: e["label"])
    assert [(label, start, end) for label, start, end, _ in stored] == [(c, 0.0, 12.0) for c in CLASSES]
    np.testing.assert_allclose([row[3] for row in stored], [e["score"] for e in expected], rtol=1e-6)
    hits = search(db, CLASSES[0], min_score=0.0)
    assert len(hits) == counted[CLASSES[0]] and all(a["score"] >= b["score"] for a, b in itertools.pairwise(hits))
    late = search(db, CLASSES[0], min_score=0.0, between=(8.0, 20.0))
    assert [Path(h["path"]).name for h in late] == ["long.flac"]  # the only file that lasts past 8 s
    assert search(db, CLASSES[0], min_score=1.1) == []
    for fmt in ("csv", "jsonl", "parquet"):
        assert export(db, tmp_path / f"out.{fmt}", fmt) == len(snapshot(db)[0])
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert next(r for r in rows if r["path"] == str(long))["events"][0]["end"] == 12.0
    assert any(r["error"] for r in rows)
    assert f"{CLASSES[0]}@0.00-12.00:" in (tmp_path / "out.csv").read_text()


def test_cli_tag_search_export(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_library(tmp_path / "lib")
    db = str(tmp_path / "cat.db")
    assert main(["tag", str(tmp_path / "lib"), "--db", db, "--model", str(model_dir), "--workers", "1"]) == 1
    out, err = capsys.readouterr()
    assert "3 unreadable" in out and "soundtag qa --db" in err  # like predict: exit 1 when a file failed
    assert main(["search", "--db", db, "--label", CLASSES[0], "--min-score", "0", "--between", "0s", "5s"]) == 0
    weights = Classifier.load(model_dir).identity["weights"]
    assert f"from the rows of model {weights}" in capsys.readouterr().err  # which model answered
    assert main(["export", "--db", db, "--format", "csv", "--out", str(tmp_path / "x.csv")]) == 0
    assert f"from the rows of model {weights}" in capsys.readouterr().err
    assert main(["search", "--db", str(tmp_path / "none.db"), "--label", "dog"]) == 2
    assert "no such catalog" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["search", "--label", "bells"], "no sound called 'bells' in this catalog; did you mean bell?"),
    (["search", "--label", "Rain"], "did you mean rain?"),
    (["search", "--label", "bell", "--between", "60", "10"], "the start must come before the end"),
    (["export", "--out", "tags.txt"], "cannot tell the format from the extension"),
    (["export", "--out", "tags.parquet", "--format", "csv"], "the extension says parquet but --format says csv"),
])
def test_cli_mistakes_get_one_clear_line(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                         args: list, message: str) -> None:
    (tmp_path / "lib").mkdir()
    sf.write(tmp_path / "lib" / "a.wav", tone(440.0, 16000, 1.0), 16000)
    db = str(tmp_path / "cat.db")
    assert main(["tag", str(tmp_path / "lib"), "--db", db, "--model", str(model_dir), "--workers", "0"]) == 0
    capsys.readouterr()
    out_args = [a if not a.startswith("tags.") else str(tmp_path / a) for a in args]
    assert main([*out_args[:1], "--db", db, *out_args[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_export_takes_the_format_from_the_extension(clf: Classifier, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    sf.write(tmp_path / "lib" / "a.wav", tone(440.0, 16000, 1.0), 16000)
    db = str(tmp_path / "cat.db")
    tag_library([tmp_path / "lib"], db, clf, workers=0)
    assert main(["export", "--db", db, "--out", str(tmp_path / "tags.parquet")]) == 0
    assert (tmp_path / "tags.parquet").read_bytes()[:4] == b"PAR1"


def test_tag_refuses_a_missing_root(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "cat.db"
    assert main(["tag", str(tmp_path / "not-there"), "--db", str(db), "--model", str(model_dir)]) == 2
    assert "not-there: no such folder or file" in capsys.readouterr().err
    assert not db.exists()  # an unmounted share leaves no empty catalog behind


def test_list_files_are_read(tmp_path: Path) -> None:
    make_library(tmp_path / "lib")
    listing = tmp_path / "files.txt"
    listing.write_text(f"{tmp_path / 'lib' / 'a' / 'short.wav'}\n\n{tmp_path / 'missing.wav'}\n")
    assert [p.name for p in ingest.discover([listing])] == ["short.wav", "missing.wav"]


def test_similar_returns_the_planted_neighbours(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two noisy takes of each ESC-10 example: a new take of the dog finds the two dog takes first."""
    rng = np.random.default_rng(0)
    examples = sorted((REPO / "examples").glob("*.flac"))
    (tmp_path / "lib").mkdir()
    for path in examples:
        audio, sr = sf.read(path, dtype="float32")
        for take in range(2):
            noisy = rng.uniform(0.5, 1.0) * audio + 0.003 * rng.standard_normal(len(audio)).astype(np.float32)
            sf.write(tmp_path / "lib" / f"{path.stem}_{take}.flac", noisy, sr)
    sf.write(tmp_path / "lib" / "silence.wav", np.zeros(16000, np.float32), 16000)  # no embedding to index
    db = tmp_path / "cat.db"
    clf = Classifier.load()
    tag_library([tmp_path / "lib"], db, clf, workers=0)
    audio, sr = sf.read(REPO / "examples" / "dog.flac", dtype="float32")
    hits = index.similar(db, clf.embed(0.7 * audio, sr), k=3)
    assert sorted(Path(h["path"]).name for h in hits[:2]) == ["dog_0.flac", "dog_1.flac"]
    assert 1.0 >= hits[0]["score"] >= hits[1]["score"] > hits[2]["score"]
    assert Path(f"{db}.faiss").exists()
    assert index.embedding_index(db) is index.embedding_index(db)  # read once, not per query
    tagged = len(examples) * 2
    assert len(index.similar(db, clf.embed(0.7 * audio, sr), k=50)) == tagged  # the silent file is not indexed
    query = tmp_path / "lib" / "dog_0.flac"
    assert main(["similar", str(query), "--db", str(db), "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].endswith("dog_1.flac")  # the query file itself is left out
    (tmp_path / "lib" / "dog_0.flac").unlink()
    sf.write(tmp_path / "lib" / "rain_2.flac", sf.read(REPO / "examples" / "rain.flac")[0], sr)
    tag_library([tmp_path / "lib"], db, clf, workers=0)  # a changed catalog rebuilds the index
    assert len(index.similar(db, clf.embed(0.7 * audio, sr), k=50)) == tagged + 1


def test_ray_engine_writes_the_same_catalog(clf: Classifier, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the Ray engine needs ray[data] (pip install 'ray[data]')")
    make_library(tmp_path / "lib")
    local = tag_library([tmp_path / "lib"], tmp_path / "local.db", clf, workers=0, batch_files=3)
    counts = tag_library([tmp_path / "lib"], tmp_path / "ray.db", clf, workers=2, batch_files=3, engine="ray")
    assert {k: counts[k] for k in ("found", "tagged", "failed")} == {k: local[k] for k in ("found", "tagged", "failed")}
    (assets, windows), (ray_assets, ray_windows) = snapshot(tmp_path / "local.db"), snapshot(tmp_path / "ray.db")
    assert ray_assets == assets
    assert [w[:4] for w in ray_windows] == [w[:4] for w in windows]
    np.testing.assert_allclose([w[4] for w in ray_windows], [w[4] for w in windows], atol=2e-4)


def test_cli_mistakes_get_one_line_errors(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sf.write(tmp_path / "x.wav", tone(440.0, 16000, 1.0), 16000)
    assert main(["tag", str(tmp_path), "--db", str(tmp_path / "c.db"), "--address", "auto"]) == 2
    assert "--address is for --engine ray" in capsys.readouterr().err
    assert main(["tag", str(tmp_path), "--db", str(tmp_path / "c.db"), "--engine", "ray", "--workers", "0"]) == 2
    assert "needs --workers 1 or more" in capsys.readouterr().err
    assert main(["similar", str(tmp_path / "x.wav"), "--db", str(tmp_path / "none.db")]) == 2
    assert "no such catalog" in capsys.readouterr().err
    sf.write(tmp_path / "quiet.wav", np.zeros(16000, np.float32), 16000)
    assert main(["similar", str(tmp_path / "quiet.wav"), "--db", str(tmp_path / "none.db")]) == 2
    assert "is silent" in capsys.readouterr().err
    (tmp_path / "rules.txt").write_text("dogs dog\n")
    assert main(["qa", "--db", str(tmp_path / "c.db"), "--rules", str(tmp_path / "rules.txt")]) == 2
    assert "rules.txt:1: expected `folder: label, label`" in capsys.readouterr().err


def test_batches_close_on_files_or_audio_held() -> None:
    items = [(Path(f"{i}.wav"), np.zeros(n, np.float32), {}) for i, n in enumerate([10, 10, 500, 10, 10, 10])]
    items.insert(2, (Path("bad.wav"), None, {}))
    sizes = [len(b) for b in ingest._batches(items, files=3, samples=100)]
    assert sizes == [3, 1, 3]  # [10, 10, bad] by count, [500] by audio, then the rest


def test_a_catalog_from_before_the_level_checks_is_upgraded(clf: Classifier, tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "old.db")
    old.execute("CREATE TABLE assets (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER, "
                "mtime_ns INTEGER, duration REAL, sample_rate INTEGER, channels INTEGER, status TEXT NOT NULL, "
                "error TEXT, tagged_at TEXT)")
    old.close()
    (tmp_path / "lib").mkdir()
    sf.write(tmp_path / "lib" / "a.wav", tone(440.0, 16000, 1.0), 16000)
    assert tag_library([tmp_path / "lib"], tmp_path / "old.db", clf, workers=0)["tagged"] == 1
    conn = sqlite3.connect(tmp_path / "old.db")
    assert conn.execute("SELECT peak FROM assets").fetchone()[0] == pytest.approx(0.5, abs=1e-3)


def test_files_tagged_before_events_were_kept_are_tagged_again(clf: Classifier, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    sf.write(tmp_path / "lib" / "a.wav", tone(440.0, 16000, 8.0), 16000)
    db = tmp_path / "cat.db"
    tag_library([tmp_path / "lib"], db, clf, workers=0)
    assert tag_library([tmp_path / "lib"], db, clf, workers=0)["skipped"] == 1
    with sqlite3.connect(db) as conn:  # what a 0.1 catalog holds: no windows, no events
        conn.execute("DELETE FROM windows")
        conn.execute("DELETE FROM events")
    assert tag_library([tmp_path / "lib"], db, clf, workers=0)["tagged"] == 1
    assert search(db, CLASSES[0], min_score=0.0)



def test_a_file_name_that_is_not_utf8_stops_nothing(clf: Classifier, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "ok.wav", tone(440.0, 16000, 1.0), 16000)
    sf.write(lib / "tmp.wav", tone(440.0, 16000, 1.0), 16000)
    os.rename(os.fsencode(lib / "tmp.wav"), os.fsencode(lib) + b"/caf\xe9.wav")  # a Latin-1 name from an old share
    db = tmp_path / "cat.db"
    counts = tag_library([lib], db, clf, workers=0)
    assert counts["found"] == counts["tagged"] == 2  # read and tagged like any other
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT path, status FROM assets").fetchall())
    assert {Path(p).name for p in rows} == {"caf\\xe9.wav", "ok.wav"}  # stored, its byte shown as an escape
    assert set(rows.values()) == {"ok"}
    assert tag_library([lib], db, clf, workers=0)["skipped"] == 2  # found again under the same text


def test_an_unexpected_decoder_failure_is_that_files_only(clf: Classifier, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    make_library(tmp_path / "lib")
    real = ingest.decode

    def fragile(path: Path):  # an MP3 whose header makes the decoder ask for 18 TiB, say
        if path.name == "noise.ogg":
            raise MemoryError("Unable to allocate 18.0 TiB")
        return real(path)

    monkeypatch.setattr(ingest, "decode", fragile)
    counts = tag_library([tmp_path / "lib"], tmp_path / "cat.db", clf, workers=1)
    assert counts["tagged"] == counts["found"] - 4  # the three broken files of make_library, and this one
    with sqlite3.connect(tmp_path / "cat.db") as conn:
        (error,) = conn.execute("SELECT error FROM assets WHERE path LIKE '%noise.ogg'").fetchone()
    assert error == "cannot be decoded (MemoryError: Unable to allocate 18.0 TiB)"


def test_links_are_catalogued_where_found_and_loops_reported(clf: Classifier, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    lib, elsewhere = tmp_path / "lib", tmp_path / "elsewhere"
    lib.mkdir()
    elsewhere.mkdir()
    sf.write(elsewhere / "take.wav", tone(440.0, 16000, 1.0), 16000)
    (lib / "linked.wav").symlink_to(elsewhere / "take.wav")
    (lib / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    (lib / "loop").symlink_to(lib)  # a folder that contains itself
    db = tmp_path / "cat.db"
    counts = tag_library([lib], db, clf, workers=0)
    assert counts["tagged"] == counts["failed"] == 1
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT path, COALESCE(error, status) FROM assets").fetchall())
    assert rows == {str(lib / "linked.wav"): "ok", str(lib / "dangling.wav"): "file not found"}
    assert "walked already" in caplog.text


def test_a_list_file_in_another_encoding_keeps_its_names(tmp_path: Path) -> None:
    listing = tmp_path / "files.txt"
    listing.write_bytes(b"/share/caf\xe9.wav\n/share/ok.wav\n")  # Latin-1, from an old share
    assert [os.fsencode(p) for p in ingest.discover([listing])] == [b"/share/caf\xe9.wav", b"/share/ok.wav"]


def test_a_second_writer_is_refused(clf: Classifier, tmp_path: Path) -> None:
    from soundtag.library.catalog import sole_writer

    make_library(tmp_path / "lib")
    db = tmp_path / "cat.db"
    with sole_writer(db), pytest.raises(CatalogError, match="another `soundtag tag` is writing"):
        tag_library([tmp_path / "lib"], db, clf, workers=0)
    assert tag_library([tmp_path / "lib"], db, clf, workers=0)["tagged"] > 0  # free again afterwards


@pytest.mark.parametrize("content", [b"not a database at all" * 100, None])
def test_a_file_that_is_not_a_catalog_is_one_line_and_left_alone(tmp_path: Path, content: bytes | None,
                                                                 capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "other.db"
    if content is None:  # someone else's SQLite database
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE invoices (id INTEGER)")
    else:
        db.write_bytes(content)
    before = db.read_bytes()
    for args in (["search", "--db", str(db), "--label", "dog"], ["export", "--db", str(db), "--out", "x.csv"],
                 ["tag", str(tmp_path), "--db", str(db)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "not a soundtag catalog" in err and len(err.strip().splitlines()) == 1, err
    assert db.read_bytes() == before


def test_export_leaves_no_half_written_file(clf: Classifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    make_library(tmp_path / "lib")
    db = tmp_path / "cat.db"
    tag_library([tmp_path / "lib"], db, clf, workers=0)

    def disk_full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(catalog, "_write_rows", disk_full)
    with pytest.raises(OSError, match="No space"):
        export(db, tmp_path / "tags.csv", "csv")
    assert list(tmp_path.glob("*tags.csv*")) == []
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "tags.csv")]) == 1  # the machine's fault: 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == "soundtag export: failed: No space left on device"


def test_a_long_file_is_tagged_block_by_block_to_the_same_rows(clf: Classifier, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Above STREAM_ABOVE bytes a file is decoded, measured and tagged a block at a time: the catalog rows are the
    same."""
    (tmp_path / "lib").mkdir()
    rng = np.random.default_rng(1)
    take = np.stack([tone(440.0, 22050, 12.0), 0.2 * rng.standard_normal(22050 * 12)], axis=1).astype(np.float32)
    sf.write(tmp_path / "lib" / "take.flac", take, 22050)
    tag_library([tmp_path / "lib"], tmp_path / "whole.db", clf, workers=0)
    monkeypatch.setattr(ingest, "STREAM_ABOVE", 5 * 32_000 * 4)  # 5 s at 32 kHz
    streamed_files = []
    monkeypatch.setattr(ingest, "decode_blocks",
                        lambda path: streamed_files.append(path) or decoder.decode_blocks(path, samples=75_000))
    tag_library([tmp_path / "lib"], tmp_path / "streamed.db", clf, workers=0)
    assert len(streamed_files) == 1
    queries = ("SELECT status, duration, sample_rate, channels, peak, rms_dbfs, dc_offset, clipped FROM assets",
               "SELECT label, start_s, end_s, score FROM events ORDER BY 1, 2")
    whole, streamed = (closing(sqlite3.connect(tmp_path / name)) for name in ("whole.db", "streamed.db"))
    with whole as a, streamed as b:
        for sql in queries:
            rows_a, rows_b = a.execute(sql).fetchall(), b.execute(sql).fetchall()
            assert len(rows_a) == len(rows_b) > 0
            for x, y in zip(rows_a, rows_b):
                assert x[0] == y[0] and x[1:] == pytest.approx(y[1:], rel=1e-4, abs=1e-4)


def test_a_catalog_that_cannot_be_written_is_read_as_it_is(clf: Classifier, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    make_library(tmp_path / "lib")
    db = tmp_path / "cat.db"
    tag_library([tmp_path / "lib"], db, clf, workers=0)
    expected = search(db, CLASSES[0], min_score=0.0)

    def read_only_disk(_db: object) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(catalog, "connect", read_only_disk)
    assert search(db, CLASSES[0], min_score=0.0) == expected


def test_another_model_or_other_settings_retag_and_reads_never_mix(clf: Classifier, model_dir: Path,
                                                                   tmp_path: Path) -> None:
    make_library(tmp_path / "lib")
    db = tmp_path / "cat.db"
    first = tag_library([tmp_path / "lib"], db, clf, workers=0)
    assert first["retagged"] == 0
    other = Classifier.load(model_dir, threshold=0.5)  # other settings: other events
    assert other.model_key != clf.model_key and other.identity["weights"] == clf.identity["weights"]
    kept = tag_library([tmp_path / "lib"], db, other, workers=0, keep_old=True)
    assert kept["tagged"] == kept["failed"] == 0 and kept["skipped"] == first["found"]
    with closing(catalog.open_catalog(db)) as conn:
        assert catalog.other_models(conn) == first["found"]
        assert catalog.current_model(conn)["threshold"] == 0.5
    assert search(db, CLASSES[0], min_score=0.0) == []  # the old rows are left out, not mixed in
    assert export(db, tmp_path / "out.jsonl", "jsonl") == 0
    assert check_catalog(db)[1] == 0  # QA checks this model's rows only: none yet
    again = tag_library([tmp_path / "lib"], db, other, workers=0)
    assert again["retagged"] == first["found"] and again["skipped"] == 0
    with closing(catalog.open_catalog(db)) as conn:
        assert catalog.other_models(conn) == 0
        assert {k for (k,) in conn.execute("SELECT DISTINCT model FROM assets")} == {other.model_key}
    assert search(db, CLASSES[0], min_score=0.0) == []  # at 0.5 the untrained model finds no event
    assert tag_library([tmp_path / "lib"], db, other, workers=0)["skipped"] == first["found"]


def test_similar_refuses_a_query_from_another_network(clf: Classifier, tmp_path: Path) -> None:
    make_library(tmp_path / "lib")
    db = tmp_path / "cat.db"
    tag_library([tmp_path / "lib"], db, clf, workers=0)
    catalog.check_same_model(db, clf.identity)
    with pytest.raises(CatalogError, match="tagged with another model"):
        catalog.check_same_model(db, {**clf.identity, "weights": "0" * 16})


def _old_catalog(path: Path, files: int) -> None:
    """A catalog as soundtag 0.4 wrote it: no model column, no models table."""
    old = sqlite3.connect(path)
    old.executescript(catalog.SCHEMA.replace(", model TEXT);", ");").split("CREATE TABLE IF NOT EXISTS models")[0]
                      + "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);")
    old.executemany("INSERT INTO assets (path, status) VALUES (?, 'ok')", [(f"/lib/{i}.wav",) for i in range(files)])
    old.commit()
    old.close()


def test_a_catalog_from_04_is_migrated_in_place_and_read_until_retagged(clf: Classifier, tmp_path: Path) -> None:
    _old_catalog(tmp_path / "old.db", 3)
    with closing(catalog.open_catalog(tmp_path / "old.db")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM assets a WHERE " + catalog.CURRENT).fetchone()[0] == 3
        assert catalog.current_model(conn) is None
    (tmp_path / "lib").mkdir()
    sf.write(tmp_path / "lib" / "a.wav", tone(440.0, 16000, 1.0), 16000)
    assert tag_library([tmp_path / "lib"], tmp_path / "old.db", clf, workers=0)["tagged"] == 1
    with closing(catalog.open_catalog(tmp_path / "old.db")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM assets").fetchone()[0] == 4  # nothing lost
        assert catalog.other_models(conn) == 3  # the old rows, left out of reads until their files are re-tagged


def test_the_migration_survives_kill_9_at_any_point(tmp_path: Path) -> None:
    migrate = f"import sys; sys.path.insert(0, {str(REPO / 'src')!r}); from soundtag.library import catalog; " \
              "catalog.connect(sys.argv[1]).close()"
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4):
        db = tmp_path / f"old-{delay}.db"
        _old_catalog(db, 2000)
        proc = subprocess.Popen([sys.executable, "-c", migrate, str(db)])
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with closing(catalog.connect(db)) as conn:  # a later open finishes what was cut off
            assert conn.execute("SELECT COUNT(*) FROM assets").fetchone()[0] == 2000
            assert "model" in {row[1] for row in conn.execute("PRAGMA table_info(assets)")}
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
