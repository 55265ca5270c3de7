"""The package layout shows the pipeline: each sub-package imports only those before it, and says so."""

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "soundtag"
# Data-flow order; training and the library are siblings on one level and never import each other.
LEVELS = {"errors": 0, "audio": 1, "features": 2, "models": 3, "inference": 4, "training": 5, "library": 5,
          "interfaces": 6}


def imported_parts(path: Path) -> set[str]:
    """The soundtag sub-packages (or top-level modules) a source file imports, at the top or inside functions."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "soundtag":
            names = node.module.split(".")[1:2] or [a.name for a in node.names]
            parts.update(n for n in names if n in LEVELS)
        elif isinstance(node, ast.Import):
            parts.update(a.name.split(".")[1] for a in node.names if a.name.startswith("soundtag."))
    return parts


@pytest.mark.parametrize("sub", [s for s in LEVELS if (PACKAGE / s).is_dir()])
def test_nothing_imports_upward(sub: str) -> None:
    for path in sorted((PACKAGE / sub).rglob("*.py")):
        for other in imported_parts(path) - {sub}:
            assert LEVELS[other] < LEVELS[sub], f"{path.relative_to(PACKAGE)} imports soundtag.{other}"


def test_every_module_lives_in_a_sub_package_that_says_what_it_holds() -> None:
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "errors.py"]
    for sub in (s for s in LEVELS if (PACKAGE / s).is_dir()):
        doc = importlib.import_module(f"soundtag.{sub}").__doc__
        modules = sorted(p.stem for p in (PACKAGE / sub).glob("*.py") if p.stem != "__init__")
        assert doc and "import" in doc.lower(), f"soundtag.{sub} does not say what it may import"
        assert all(f"`{m}`" in doc for m in modules), f"soundtag.{sub}'s docstring misses a module"


def test_the_front_door_still_opens() -> None:
    import soundtag

    assert soundtag.Classifier.__module__ == "soundtag.inference.classifier"
    assert issubclass(soundtag.AudioError, ValueError)
