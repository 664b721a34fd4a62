# Two commands for a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint venv dev train evaluate export bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt requirements-ray.txt pyproject.toml
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -r requirements-ray.txt   # the Ray backend's tests start a real local cluster
	$(PY) -m pip install -q -e .        # the project itself, editable: console scripts mnist-core, mnist-demo
	touch $@

venv: $(VENV)/.installed
dev: $(VENV)/.dev-installed

demo: $(VENV)/.installed            ## set up and start the app on http://127.0.0.1:7860
	$(PY) demo.py $(ARGS)

test: $(VENV)/.dev-installed        ## set up and run the whole test suite
	$(PY) -m pytest $(ARGS)

lint: $(VENV)/.dev-installed        ## ruff, with the rules and settings in pyproject.toml
	$(PY) -m ruff check .

train: $(VENV)/.installed           ## the recipe with its defaults; ARGS="--epochs 3" etc.
	$(PY) -m mnist_core train $(ARGS)

evaluate: $(VENV)/.installed
	$(PY) -m mnist_core evaluate $(ARGS)

export: $(VENV)/.dev-installed      ## the shipped model as ONNX; ARGS="--checkpoint X --out Y"
	$(PY) -m mnist_core export $(ARGS)

bench: $(VENV)/.dev-installed       ## the CPU benchmarks (see benchmarks/README.md)
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/predict_latency.py

clean:
	rm -rf $(VENV) .pytest_cache tests/artifacts
