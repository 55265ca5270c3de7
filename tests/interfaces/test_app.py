"""The web app through its API (gradio_client); the real-browser test is in test_app_browser.py."""

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
from gradio_client.exceptions import AppError  # noqa: E402

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
    label, plot, events = client.predict(handle_file(str(tmp_path / "tone.wav")), api_name="/predict")
    assert label["label"] in CLASSES and len(label["confidences"]) == 5
    assert plot["type"] == "matplotlib" and len(plot["plot"]) > 1000  # an inline PNG, not a shared file
    assert [row[:2] for row in events["data"]] == [["0.0", "12.0"]] * len(CLASSES)  # every window, merged
    assert sorted(row[2] for row in events["data"]) == sorted(CLASSES)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("notes.wav", b"meeting notes, not audio" * 10, "not audio"),
    ("empty.wav", b"", "empty"),
])
def test_bad_uploads_get_a_message_and_the_server_keeps_serving(client: Client, tmp_path: Path, name: str,
                                                                 content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(AppError, match=f"Cannot tag {name}.*{message}"):
        client.predict(handle_file(str(tmp_path / name)), api_name="/predict")
    sf.write(tmp_path / "ok.wav", tone(440.0, 16000, 1.0), 16000)
    assert client.predict(handle_file(str(tmp_path / "ok.wav")), api_name="/predict")[0]["label"] in CLASSES


def test_too_long_is_refused(client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "MAX_SECONDS", 3)
    sf.write(tmp_path / "long.wav", tone(440.0, 8000, 4.0), 8000)
    with pytest.raises(AppError, match="longer than 3 s"):
        client.predict(handle_file(str(tmp_path / "long.wav")), api_name="/predict")


def test_live_rolling_window(clf: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    tagger = app_module.Tagger(clf)
    clock = iter(np.arange(0.0, 100.0, 0.5))
    monkeypatch.setattr(app_module, "monotonic", lambda: next(clock))
    state, labels = None, []
    for _ in range(16):  # 8 s of microphone in 0.5-s chunks
        label, state = tagger.live((48000, (tone(440.0, 48000, 0.5) * 32767).astype(np.int16)), state)
        labels.append(label)
    assert len(state["buffer"]) == 5 * 32000  # only the last window is kept
    assert all(set(x) <= set(CLASSES) for x in labels)
    assert sum(a is not b for a, b in itertools.pairwise(labels)) == 7  # one new label per second of audio



CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_in_a_real_browser(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Upload, click Tag, read the top label; then bad uploads show a message and the page keeps working."""
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
        tag = page.get_by_role("button", name="Tag", exact=True)

        def submit(path: Path) -> None:
            clear = page.locator("button[aria-label='Clear']")
            if clear.count():
                clear.first.click()
            page.locator("input[type=file]").first.set_input_files(str(path))
            page.wait_for_timeout(1000)  # let the component finish its upload
            tag.click()

        submit(tmp_path / "tone.wav")
        top = page.locator('[data-testid="label-output-value"]')
        top.wait_for()
        assert top.inner_text().strip() in CLASSES
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        assert (tmp_path / "app.png").stat().st_size > 10_000

        for name, message in (("notes.wav", "not audio"), ("empty.wav", "empty"), ("long.wav", "longer than 8 s")):
            submit(tmp_path / name)
            toast = page.get_by_text(f"Cannot tag {name}")
            toast.wait_for()
            assert message in toast.inner_text()
        sf.write(tmp_path / "four.wav", tone(440.0, 16000, 4.0), 16000)
        submit(tmp_path / "four.wav")  # still serving: a new result with the new clip's length
        page.get_by_test_id("cell-0-1").get_by_text("4.0", exact=True).wait_for()
        browser.close()


def test_catalog_tab_searches_by_tag_and_by_sound(client: Client, catalog_db: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(catalog_db)
    label, score = conn.execute("SELECT label, score FROM events ORDER BY score DESC").fetchone()
    conn.close()
    windows = client.predict(label, 0.0, api_name="/search")["data"]
    assert windows and windows[0][3] == pytest.approx(score, abs=1e-3)
    sf.write(tmp_path / "query.wav", tone(440.0, 16000, 5.0, amp=0.4), 16000)
    files = client.predict(handle_file(str(tmp_path / "query.wav")), 2, api_name="/similar")["data"]
    assert sorted(Path(row[0]).name for row in files) == ["tone_a.wav", "tone_b.wav"]
    sf.write(tmp_path / "quiet.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(AppError, match="silent"):
        client.predict(handle_file(str(tmp_path / "quiet.wav")), 2, api_name="/similar")


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
    (label,) = [c["id"] for c in config["components"] if c.get("props", {}).get("label", "").startswith("Sounds in")]
    assert sum(label in d["outputs"] for d in config["dependencies"]) == 2  # the Tag button and an example's click
    tabs = lambda cfg: [c["props"].get("label") for c in cfg["components"] if c["type"] == "tabitem"]  # noqa: E731
    assert "Search a catalog" not in tabs(config)
    (live,) = [d for d in config["dependencies"] if d.get("api_name") == "live"]
    assert live["time_limit"] == app_module.LIVE_SECONDS
    assert "Search a catalog" in tabs(app_module.build_app(clf, examples=[], db=catalog_db).config)


def test_user_errors_are_logged_as_one_line(clf: Classifier, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(gr.Error) as raised:
        app_module.Tagger(clf)._load(None)
    assert raised.value.print_exception is False  # Gradio would print its traceback
    assert caplog.records[-1].getMessage() == "refused: Upload or record a clip first."


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
