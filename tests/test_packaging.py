"""The wheel: built from this checkout, installed into a fresh virtual environment, it tags a file from a folder far
from the repository with the model it carries (no checkout, no $SOUNDTAG_MODEL)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

MODEL_FILES = ("model.json", "model.safetensors", "model.onnx", "ood.safetensors")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):  # a clean copy: setuptools builds in the source tree
        shutil.copy(REPO / name, source)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(out), str(source)], check=True, cwd=out)
    (path,) = out.glob("soundtag-*.whl")
    return path


def test_the_wheel_carries_the_shipped_model(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"soundtag/models/esc50/{name}" for name in MODEL_FILES} <= names
    assert "soundtag/models/audioset/esc50_mapping.json" in names  # YAMNet itself is fetched on first use


@pytest.mark.slow
def test_an_installed_wheel_tags_a_file_with_its_own_model(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The dependencies (torch and the rest) come from this environment's site-packages, read as a plain folder:
    # its own .pth files, among them the editable install of this checkout, are not processed.
    purelib = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path("
                                   "'purelib'))"], capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(REPO / "examples" / "dog.flac", elsewhere)
    env = {k: v for k, v in os.environ.items() if k not in ("SOUNDTAG_MODEL", "PYTHONPATH")}
    where = subprocess.run([python, "-c", "import soundtag; print(soundtag.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert Path(where).resolve().is_relative_to(venv.resolve())  # the wheel's copy, not this checkout
    done = subprocess.run([venv / "bin" / "soundtag", "predict", "dog.flac", "--json"], cwd=elsewhere, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tags"][0]["label"] == "dog"
