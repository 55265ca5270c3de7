"""Hugging Face Spaces entry point: the soundtag web app with the shipped model (`python app.py`). It listens where
GRADIO_SERVER_NAME and GRADIO_SERVER_PORT say (Spaces sets 0.0.0.0), else on 127.0.0.1:7860."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # Spaces runs from a checkout, not an install

from soundtag.interfaces.app import launch

if __name__ == "__main__":
    launch()
