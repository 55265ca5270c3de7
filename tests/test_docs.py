"""Docs that cannot rot: the site builds with warnings as errors, and every code example in it and in the README runs,
page by page in a fresh folder holding `examples/`, or says in the page why it does not (`<!-- not run: why -->`
on the line before it)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

FENCE = re.compile(r"^(?:<!-- not run: (?P<why>[^>]*\S) -->\n)?```(?P<lang>python|bash)\n(?P<code>.*?)^```$",
                   re.M | re.S)
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
BIN = Path(sys.executable).parent  # where `soundtag` is installed beside this interpreter


def examples(page: Path) -> list[tuple[str, str, str | None]]:
    """The page's fenced python and bash blocks as (language, code, why it is not run or None)."""
    return [(m["lang"], m["code"], m["why"]) for m in FENCE.finditer(page.read_text())]


@pytest.mark.parametrize("page", [p for p in PAGES if examples(p)], ids=lambda p: str(p.relative_to(REPO)))
def test_every_example_runs(page: Path, tmp_path: Path, yamnet_folder: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {}
    for number, (lang, code, why) in enumerate(examples(page), 1):
        if why:
            continue
        where = f"{page.relative_to(REPO)}, example {number}"
        if lang == "python":
            exec(compile(code, where, "exec"), namespace)
        else:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, capture_output=True,
                                  text=True)
            assert done.returncode == 0, f"{where} failed:\n{code}\n{done.stderr[-2000:]}"


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's notice of its successor, not a warning of ours
    done = subprocess.run([BIN / "mkdocs", "build", "--strict", "--site-dir", tmp_path / "site"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "inference" / "index.html").is_file()
