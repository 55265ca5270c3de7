# Two commands do everything on a fresh machine: `make demo` (set up, fetch ESC-50, reproduce the committed
# cross-validation numbers from the committed fold models, tag the example clips with the shipped model) and
# `make test` (set up, lint, run the tests).
# TORCH picks the PyTorch build: the default is the CPU wheel this project is developed with; elsewhere use e.g.
#   make demo TORCH="torch --index-url https://download.pytorch.org/whl/cpu"     (CPU)
#   make demo TORCH="torch"                                                       (CUDA, on Linux)
PYTHON ?= python3
TORCH ?= torch==2.13.0
DATA ?= data/ESC-50
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo data app train final test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

data: setup
	$(BIN)/soundtag download --root $(DATA)

demo: data
	$(BIN)/soundtag evaluate results/esc50 --data $(DATA)
	$(BIN)/soundtag predict examples/*.flac --top-k 3

app: setup
	$(BIN)/soundtag app

train: data  # the committed 5-fold run: about 2 h on 2 CPU cores
	$(BIN)/soundtag train --data $(DATA) --out runs/esc50

final: data  # the shipped model: all 2,000 clips, default recipe
	$(BIN)/soundtag train --data $(DATA) --out runs/final --full

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: data  # on a quiet machine: these time things
	$(BIN)/python bench/cache_build.py --data $(DATA)
	$(BIN)/python bench/train_epoch.py --data $(DATA)
	$(BIN)/python bench/latency.py --data $(DATA)
	$(BIN)/python bench/tag_throughput.py --data $(DATA)
	$(BIN)/python bench/precision.py --data $(DATA)
	$(BIN)/python bench/ann.py --data $(DATA)
	$(BIN)/python bench/robustness.py --data $(DATA) --cv results/esc50-multilabel --name "multi-label (0.2)"
	$(BIN)/python bench/mixtures.py --data $(DATA) --cv results/esc50-multilabel --name "multi-label (0.2)"
	$(BIN)/python bench/qa_ood.py --data $(DATA) --cv results/esc50-multilabel
	$(BIN)/python bench/load_app.py
	$(BIN)/python bench/live_delay.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
