"""The web app through its API (gradio_client) and in a real browser (Chromium, through Playwright)."""

import itertools
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tiny_bundle, tone

gr = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from soundtag.inference.classifier import Classifier  # noqa: E402
from soundtag.interfaces import app as app_module  # noqa: E402
from soundtag.library.ingest import tag_library  # noqa: E402

CLASSES = ["bell", "hum", "rain", "wind", "dog", "car"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def clf() -> Classifier:
    """An untrained model scores every class near 1/6; a threshold below that makes each class an event."""
    return Classifier(tiny_bundle(CLASSES), threshold=0.05)


@pytest.fixture(scope="module")
def catalog_db(clf: Classifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three files: two takes of a tone and a noise burst."""
    lib = tmp_path_factory.mktemp("lib")
    sf.write(lib / "tone_a.wav", tone(440.0, 16000, 5.0), 16000)
    sf.write(lib / "tone_b.wav", tone(440.0, 16000, 5.0, amp=0.3), 16000)
    sf.write(lib / "noise.wav", np.random.default_rng(0).normal(0, 0.2, 80000).astype(np.float32), 16000)
    tag_library([lib], lib / "catalog.db", clf, workers=0)
    return lib / "catalog.db"


@pytest.fixture(scope="module")
def server(clf: Classifier, catalog_db: Path) -> Iterator[str]:
    demo = app_module.build_app(clf, db=catalog_db)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                max_file_size=app_module.MAX_FILE_SIZE)
    yield demo.local_url
    demo.close()


@pytest.fixture(scope="module")
def client(server: str) -> Client:
    return Client(server, verbose=False)


def test_predict_endpoint(client: Client, tmp_path: Path) -> None:
    sf.write(tmp_path / "tone.wav", tone(440.0, 16000, 12.0), 16000)
    status, sounds, plot, events = client.predict(handle_file(str(tmp_path / "tone.wav")), api_name="/predict")
    assert status == "**tone.wav** (0:12.0): 6 sounds present."
    assert sorted(row[0] for row in sounds["data"]) == sorted(CLASSES)  # every sound present, none cut off
    assert all(row[1].endswith("%") and row[2] == "present" for row in sounds["data"])
    assert plot["type"] == "matplotlib" and len(plot["plot"]) > 1000  # an inline PNG, not a shared file
    assert sorted(row[0] for row in events["data"]) == sorted(CLASSES)
    assert all(row[1] >= "0:00.0" and row[2] <= "0:12.0" and row[3].endswith("%") for row in events["data"])


@pytest.mark.parametrize(("name", "content", "message"), [
    ("notes.wav", b"meeting notes, not audio" * 10, "not audio"),
    ("empty.wav", b"", "empty"),
])
def test_bad_uploads_get_a_message_and_the_server_keeps_serving(client: Client, tmp_path: Path, name: str,
                                                                 content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    status, sounds, plot, events = client.predict(handle_file(str(tmp_path / name)), api_name="/predict")
    assert status.startswith(f"⚠️ Cannot tag {name}") and message in status
    assert not sounds["data"] and not events["data"] and plot is None  # the last clip's answer is cleared
    sf.write(tmp_path / "ok.wav", tone(440.0, 16000, 1.0), 16000)
    assert "present" in client.predict(handle_file(str(tmp_path / "ok.wav")), api_name="/predict")[0]


def test_too_long_is_refused(client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "MAX_SECONDS", 3)
    sf.write(tmp_path / "long.wav", tone(440.0, 8000, 4.0), 8000)
    status = client.predict(handle_file(str(tmp_path / "long.wav")), api_name="/predict")[0]
    assert "longer than 3 s" in status


def test_uploads_are_checked_as_they_arrive(clf: Classifier, tmp_path: Path) -> None:
    tagger = app_module.Tagger(clf)
    sf.write(tmp_path / "ok.wav", tone(440.0, 16000, 2.5), 16000)
    (tmp_path / "notes.wav").write_bytes(b"meeting notes, not audio" * 10)
    assert tagger.check(str(tmp_path / "ok.wav")) == "**ok.wav**: 0:02.5 of audio. Press **Tag**."
    assert tagger.check(str(tmp_path / "notes.wav")).startswith("⚠️ Cannot tag notes.wav: not audio")
    assert tagger.check(None) == ""  # the upload was cleared


def test_silence_and_unfamiliar_audio_are_said_so(clf: Classifier, tmp_path: Path) -> None:
    sf.write(tmp_path / "quiet.wav", np.zeros(16000, np.float32), 16000)
    assert "is silent" in app_module.Tagger(clf).tag(str(tmp_path / "quiet.wav"))[0]
    sf.write(tmp_path / "tone.wav", tone(440.0, 16000, 6.0), 16000)
    stats = {"mean": np.zeros(16), "precision": np.eye(16), "threshold": np.array(-1.0)}  # everything is far
    unfamiliar = Classifier(clf.bundle, clf.config, ood_stats=stats)
    status = app_module.Tagger(unfamiliar).tag(str(tmp_path / "tone.wav"))[0]
    assert "(0:00.0-0:05.0, 0:01.0-0:06.0) is unlike anything the model was trained on" in status


def test_live_rolling_window(clf: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    tagger = app_module.Tagger(clf)
    clock = iter(np.arange(0.0, 100.0, 0.5))
    monkeypatch.setattr(app_module, "monotonic", lambda: next(clock))
    state, answers = None, []
    for _ in range(16):  # 8 s of microphone in 0.5-s chunks
        sounds, state = tagger.live((48000, (tone(440.0, 48000, 0.5) * 32767).astype(np.int16)), state)
        answers.append(sounds)
    assert len(state["buffer"]) == 5 * 32000  # only the last window is kept
    assert all({row[0] for row in x} == set(CLASSES) for x in answers)  # all six present, none a headline
    assert sum(a is not b for a, b in itertools.pairwise(answers)) == 7  # one new answer per second of audio



CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def table(page: object, elem_id: str) -> list[list[str]]:
    """The rows of a Dataframe on the page, as the cells' text (rows the table keeps empty for scrolling left out)."""
    return page.eval_on_selector_all(f"#{elem_id} [role=row]", """rows => rows
        .filter(r => r.children[0]?.tagName !== 'TH')
        .map(r => [...r.children].map(c => c.innerText.trim())).filter(r => r.some(x => x))""")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_in_a_real_browser(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Upload, click Tag, read every sound; bad uploads are named as they arrive and on Tag, nothing of the last
    answer stays beside the message, and the next good clip clears it."""
    playwright = pytest.importorskip("playwright.sync_api")
    monkeypatch.setattr(app_module, "MAX_SECONDS", 8)
    sf.write(tmp_path / "tone.wav", tone(440.0, 16000, 3.0), 16000)
    sf.write(tmp_path / "long.wav", tone(440.0, 8000, 9.0), 8000)
    (tmp_path / "notes.wav").write_bytes(b"meeting notes, not audio" * 10)
    (tmp_path / "empty.wav").write_bytes(b"")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(90_000)
        page.goto(server)
        tag, status = page.get_by_role("button", name="Tag", exact=True), page.locator("#status")

        def upload(path: Path) -> None:
            clear = page.locator("button[aria-label='Clear']")
            if clear.count():
                clear.first.click()
            page.locator("input[type=file]").first.set_input_files(str(path))
            page.get_by_text(f"{path.name}", exact=False).first.wait_for()

        upload(tmp_path / "tone.wav")
        status.get_by_text("0:03.0 of audio").wait_for()  # checked on arrival
        tag.click()
        status.get_by_text("6 sounds present").wait_for()
        page.wait_for_function("document.querySelector('#events [role=grid]')?.innerText.includes('0:03.0')")
        sounds, events = table(page, "sounds"), table(page, "events")
        assert sorted(r[0] for r in sounds) == sorted(CLASSES) and {r[2] for r in sounds} == {"present"}
        assert len(events) == len(CLASSES) and {r[2] for r in events} == {"0:03.0"}  # m:ss.s, as everywhere

        for name, message in (("notes.wav", "not audio"), ("empty.wav", "empty"), ("long.wav", "longer than 8 s")):
            upload(tmp_path / name)
            status.get_by_text(f"Cannot tag {name}").wait_for()  # as it arrives
            assert message in status.inner_text()
            tag.click()
            page.wait_for_function("!document.querySelector('#sounds [role=grid]')?.innerText.includes('present')")
            assert message in status.inner_text() and not table(page, "events")
        sf.write(tmp_path / "four.wav", tone(440.0, 16000, 4.0), 16000)
        upload(tmp_path / "four.wav")
        tag.click()  # still serving, and the message is gone
        status.get_by_text("**four.wav**".strip("*") + " (0:04.0)").wait_for()
        assert "Cannot tag" not in status.inner_text() and not page.locator(".toast-body").count()
        browser.close()


def test_catalog_tab_searches_by_tag_and_by_sound(client: Client, catalog_db: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(catalog_db)
    label, score = conn.execute("SELECT label, score FROM events ORDER BY score DESC").fetchone()
    lowest = conn.execute("SELECT MIN(score) FROM events").fetchone()[0]
    conn.close()
    status, windows = client.predict(label, np.floor(100 * lowest), api_name="/search")
    assert windows["data"][0][3] == f"{100 * score:.0f}%" and status.endswith("Click one to listen.")
    status, windows = client.predict(label, 100, api_name="/search")
    assert status.startswith("Nothing found") and not windows["data"]
    sf.write(tmp_path / "query.wav", tone(440.0, 16000, 5.0, amp=0.4), 16000)
    status, files = client.predict(handle_file(str(tmp_path / "query.wav")), 2, api_name="/similar")
    assert sorted(Path(row[0]).name for row in files["data"]) == ["tone_a.wav", "tone_b.wav"]
    sf.write(tmp_path / "quiet.wav", np.zeros(16000, np.float32), 16000)
    status, files = client.predict(handle_file(str(tmp_path / "quiet.wav")), 2, api_name="/similar")
    assert "silent" in status and not files["data"]


def test_catalog_results_play_and_the_score_slider_starts_at_the_lowest_event(clf: Classifier, catalog_db: Path
                                                                               ) -> None:
    tagger = app_module.Tagger(clf, catalog_db)
    _, _, hits = tagger.search(CLASSES[0], 0)
    (rate, wave), status = tagger.play_event(hits, gr.SelectData(None, {"index": [0, 0], "value": ""}))
    assert rate == clf.sample_rate and 0 < len(wave) <= 7 * rate and status.startswith("Playing ")
    (_, whole), _ = tagger.play_file(hits, gr.SelectData(None, {"index": [0, 0], "value": ""}))
    assert len(whole) == 5 * rate  # the whole 5-s file
    Path(hits[0]["path"]).rename(Path(hits[0]["path"]).with_suffix(".moved"))
    try:
        player, status = tagger.play_file(hits, gr.SelectData(None, {"index": [0, 0], "value": ""}))
        assert player is None and status.startswith("⚠️ Cannot play")
    finally:
        Path(hits[0]["path"]).with_suffix(".moved").rename(hits[0]["path"])
    config = app_module.build_app(clf, examples=[], db=catalog_db).config
    (slider,) = [c["props"] for c in config["components"] if c["props"].get("label") == "Minimum peak score (%)"]
    lowest = sqlite3.connect(catalog_db).execute("SELECT MIN(score) FROM events").fetchone()[0]
    assert slider["minimum"] == slider["value"] == np.floor(100 * lowest)


def test_live_has_slots_of_its_own(clf: Classifier) -> None:
    """Clients that open Live and go quiet cannot take the upload slots, nor more than Live's own."""
    blocks = app_module.build_app(clf, examples=[])
    (live,) = [fn for fn in blocks.fns.values() if fn.api_name == "live"]
    assert live.concurrency_limit == app_module.LIVE_SESSIONS and live.concurrency_id == "live"


def test_live_keeps_only_a_window_of_a_huge_chunk(clf: Classifier) -> None:
    """One chunk of 10 minutes (a hostile client) is cut to its last window before it is resampled."""
    _, state = app_module.Tagger(clf).live((48000, np.zeros(48000 * 600, np.int16)), None)
    assert len(state["buffer"]) == 5 * 32000


def test_examples_run_on_click_and_the_catalog_tab_needs_a_catalog(clf: Classifier, catalog_db: Path,
                                                                  tmp_path: Path) -> None:
    sf.write(tmp_path / "ex.wav", tone(440.0, 16000, 1.0), 16000)
    config = app_module.build_app(clf, examples=[str(tmp_path / "ex.wav")]).config
    (label,) = [c["id"] for c in config["components"] if c.get("props", {}).get("label") == "Sounds in the clip"]
    assert sum(label in d["outputs"] for d in config["dependencies"]) == 2  # the Tag button and an example's click
    tabs = lambda cfg: [c["props"].get("label") for c in cfg["components"] if c["type"] == "tabitem"]  # noqa: E731
    assert "Search a catalog" not in tabs(config)
    (live,) = [d for d in config["dependencies"] if d.get("api_name") == "live"]
    assert live["time_limit"] == app_module.LIVE_SECONDS
    assert "Search a catalog" in tabs(app_module.build_app(clf, examples=[], db=catalog_db).config)


def test_user_errors_are_logged_as_one_line(clf: Classifier, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(app_module.Refused, match="Upload or record a clip first"):
        app_module.Tagger(clf)._load(None)
    assert caplog.records[-1].getMessage() == "refused: Upload or record a clip first."  # no traceback


def test_launch_listens_where_the_environment_says_and_refuses_a_taken_port(
        clf: Classifier, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from soundtag.interfaces.cli import main

    seen = {}

    class Fake:
        def launch(self, **kwargs: object) -> None:
            seen.update(kwargs)

    monkeypatch.setattr(app_module, "build_app", lambda *args, **kwargs: Fake())
    monkeypatch.setattr(app_module.Classifier, "load", lambda *args, **kwargs: clf)
    port = free_port()
    monkeypatch.setenv("GRADIO_SERVER_PORT", str(port))
    app_module.launch()
    assert (seen["server_name"], seen["server_port"]) == ("127.0.0.1", port)  # local unless told otherwise
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    app_module.launch()
    assert seen["server_name"] == "0.0.0.0"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert main(["app", "--host", "127.0.0.1", "--port", str(busy)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{busy}" in err and len(err.strip().splitlines()) == 1


def test_gradio_keeps_a_bounded_request_history(clf: Classifier) -> None:
    """Its analytics of past requests grew the server's memory in the load test (bench/load_app.py)."""
    app_module.server_settings()
    assert app_module.build_app(clf, examples=[])._queue.ANALYTICS_MAX_EVENTS <= 1000


def test_audio_outside_the_classes_is_named_by_audiosets(yamnet_folder: Path, tmp_path: Path) -> None:
    """Where none of the model's sounds is present, the status line says what AudioSet's classes hear."""
    esc50 = ["dog", "rain", "wind", "siren", "car_horn", "church_bells"]  # fusing needs their AudioSet mapping
    fused = Classifier(tiny_bundle(esc50), threshold=0.99, audioset_weight=0.3)
    sf.write(tmp_path / "tone.wav", tone(440.0, 16000, 3.0), 16000)
    status = app_module.Tagger(fused).tag(str(tmp_path / "tone.wav"))[0]
    assert "none of its 6 sounds reaches the threshold (99%)" in status
    heard = status.split("AudioSet's classes hear ")[1].rstrip(".").split(", ")
    assert len(heard) == 3 and all(h.rsplit(" ", 1)[0] in fused._yamnet().classes for h in heard)
    assert app_module.Tagger(Classifier(tiny_bundle(CLASSES), threshold=0.99)).audioset_hint(tone()) == ""
