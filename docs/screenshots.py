"""The app's screenshots in the docs, taken in Chromium from the running app with the shipped model: the two-minute
take of `examples/take.py` tagged (every sound, its events, the timeline), and the catalog tab searching the examples.

    python docs/screenshots.py            # writes docs/images/app-take.png and docs/images/app-catalog.png
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from soundtag import Classifier
from soundtag.interfaces.app import build_app
from soundtag.library.ingest import tag_library

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=REPO / "docs" / "images", type=Path)
    parser.add_argument("--port", default=7861, type=int)
    args = parser.parse_args()
    clf = Classifier.load()
    with tempfile.TemporaryDirectory() as tmp:
        take, db = Path(tmp) / "take.flac", Path(tmp) / "catalog.db"
        subprocess.run([sys.executable, REPO / "examples" / "take.py", take], check=True)
        tag_library([REPO / "examples"], db, clf, workers=0)
        demo = build_app(clf, db=db)
        demo.launch(server_name="127.0.0.1", server_port=args.port, prevent_thread_lock=True, quiet=True)
        try:
            shoot(demo.local_url, take, args.out)
        finally:
            demo.close()


def shoot(url: str, take: Path, out: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(120_000)
        page.goto(url)
        page.locator("input[type=file]").first.set_input_files(str(take))
        page.locator("#status").get_by_text("of audio").wait_for()
        page.get_by_role("button", name="Tag", exact=True).click()
        page.locator("#status").get_by_text("present").wait_for()
        page.wait_for_timeout(1500)  # the plot settles
        page.screenshot(path=str(out / "app-take.png"), full_page=True)
        page.get_by_role("tab", name="Search a catalog").click()
        page.get_by_role("button", name="Find events").click()  # the first sound, dog
        page.locator("#catalog-status").get_by_text("Click one to listen").wait_for()
        page.locator("#catalog-events [role=row]").nth(1).locator("> *").first.click()
        page.locator("#catalog-status").get_by_text("Playing").wait_for()
        page.screenshot(path=str(out / "app-catalog.png"), full_page=True)
        browser.close()
    print(f"wrote {out / 'app-take.png'} and {out / 'app-catalog.png'}")


if __name__ == "__main__":
    main()
