# Two commands do everything on a fresh machine: `make demo` (install what tagging needs, tag the example clips and a
# two-minute take with the shipped model; no dataset, no download) and `make test` (install the development tools,
# lint, run the tests, which also build the docs and run their examples). `make reproduce` fetches ESC-50 and
# re-derives the committed cross-validation numbers from the committed fold models, into runs/reproduce, and checks
# them against the committed ones.
# TORCH picks the PyTorch build: the default is the CPU wheel this project is developed with; elsewhere use e.g.
#   make demo TORCH="torch --index-url https://download.pytorch.org/whl/cpu"     (CPU)
#   make demo TORCH="torch"                                                       (CUDA, on Linux)
PYTHON ?= python3
TORCH ?= torch==2.13.0
DATA ?= data/ESC-50
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo data reproduce notebook app docs train final test bench clean

$(BIN)/.runtime: pyproject.toml  # torch and the package's own dependencies: what tagging needs
	@echo "== installing $(TORCH) and soundtag into $(VENV) (a few minutes the first time) =="
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on $(TORCH)
	$(BIN)/pip install --progress-bar on -e .
	touch $@

$(BIN)/.installed: $(BIN)/.runtime  # the app, ONNX, catalog extras and the development tools
	$(BIN)/pip install --progress-bar on -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

data: $(BIN)/.runtime
	$(BIN)/soundtag download --root $(DATA)

demo: $(BIN)/.runtime
	@echo; echo "== the six example clips with the shipped model: top 3 tags each =="
	$(BIN)/soundtag predict examples/*.flac --top-k 3
	@echo; echo "== a two-minute take: the six sounds in room tone, tags and events (where each sound is) =="
	$(BIN)/python examples/take.py runs/demo/take.flac
	$(BIN)/soundtag predict runs/demo/take.flac --plots runs/demo
	@echo; echo "Next: open runs/demo/take.png (the take's timeline); make app (the web app);"
	@echo "  $(BIN)/soundtag tag YOUR_FOLDER --db catalog.db (a whole library); make reproduce (the CV numbers)"

reproduce: data  # re-derive the committed CV report from the committed fold models, into runs/reproduce
	$(BIN)/soundtag evaluate results/esc50 --data $(DATA) --out runs/reproduce/esc50 --check

notebook: setup  # re-run notebooks/results.ipynb on results/esc50 and keep its outputs (they are committed)
	$(BIN)/python -c "import nbformat; from nbclient import NotebookClient; p = 'notebooks/results.ipynb'; \
	nb = nbformat.read(p, as_version=4); NotebookClient(nb, kernel_name='python3').execute(); nbformat.write(nb, p)"

app: setup
	$(BIN)/soundtag app

docs: setup  # the docs site into runs/site, warnings as errors (the tests build it too and run its examples)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir runs/site

train: data  # the committed 5-fold run: about 2 h on 2 CPU cores
	$(BIN)/soundtag train --data $(DATA) --out runs/esc50

final: data  # the shipped model: all 2,000 clips, default recipe
	$(BIN)/soundtag train --data $(DATA) --out runs/final --full

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: data setup  # on a quiet machine: these time things (bench/realworld/build.py needs git and the network)
	$(BIN)/python bench/cache_build.py --data $(DATA)
	$(BIN)/python bench/train_epoch.py --data $(DATA)
	$(BIN)/python bench/latency.py --data $(DATA)
	$(BIN)/python bench/tag_throughput.py --data $(DATA)
	$(BIN)/python bench/precision.py --data $(DATA)
	$(BIN)/python bench/ann.py --data $(DATA)
	$(BIN)/python bench/realworld/build.py
	$(BIN)/python bench/realworld/evaluate.py --split test --name "0.5: CNN + AudioSet fused at 0.3"
	$(BIN)/python bench/realworld/fusion_trials.py
	$(BIN)/python bench/few_shot.py --data $(DATA) --scratch-folds 1
	$(BIN)/python bench/robustness.py --data $(DATA) --cv results/esc50 --name "0.5 (0.4 + AudioSet at 0.3)"
	$(BIN)/python bench/mixtures.py --data $(DATA) --cv results/esc50 --name "0.5 (0.4 + AudioSet at 0.3)"
	# 0.4's rows (the CNN alone) were measured at its commit, d3d1ca6, whose fold models did not fuse
	$(BIN)/python bench/robustness.py --data $(DATA) --cv results/esc50-v0.3 --name "multi-label (0.3)"
	$(BIN)/python bench/mixtures.py --data $(DATA) --cv results/esc50-v0.3 --name "multi-label (0.3)"
	$(BIN)/python bench/robustness.py --data $(DATA) --cv results/esc50-v0.2 --name "multi-label (0.2)"
	$(BIN)/python bench/mixtures.py --data $(DATA) --cv results/esc50-v0.2 --name "multi-label (0.2)"
	$(BIN)/python bench/robustness.py --data $(DATA) --cv results/esc50-v0.1 --name "single-label (0.1)" --aggregate mean
	$(BIN)/python bench/mixtures.py --data $(DATA) --cv results/esc50-v0.1 --name "single-label (0.1)"
	$(BIN)/python bench/qa_ood.py --data $(DATA) --cv results/esc50
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/load_app.py
	$(BIN)/python bench/live_delay.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
