"""Hugging Face Spaces entry point: the soundtag web app with the shipped model (`python app.py`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # Spaces runs from a checkout, not an install

from soundtag.app import launch

if __name__ == "__main__":
    launch(host="0.0.0.0", port=7860)
