# convforge: `make demo` and `make test` are all a new machine needs.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
PIP   := $(VENV)/bin/pip
EXTRAS := $(shell if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then echo gpu,dev; else echo cpu,dev; fi)
STAMP := $(VENV)/.installed-$(EXTRAS)
export NO_ALBUMENTATIONS_UPDATE := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test bench bench-full lint install data clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall only when the project's requirements change.
# tensorflow-serving-api pins the full `tensorflow` wheel (which would clash with
# tensorflow-cpu), so its gRPC protos are installed without dependencies.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[$(EXTRAS)]"
	$(PIP) install --quiet --no-deps "tensorflow-serving-api==2.21.0"
	touch $(STAMP)

install: $(STAMP)

# The data the demo and the tests read (Fashion-MNIST: Debian package, else Keras download, else one error line).
data: install
	$(PY) -m pipelines.install_data

demo: data
	$(PY) -m tasks.workflows.demo $(DEMO_ARGS)

test: data
	$(PY) -m pytest -q

bench: data
	$(PY) benchmarks/run_all.py

bench-full: data
	$(PY) benchmarks/run_all.py --full

lint: install
	$(VENV)/bin/ruff check pipelines models tasks serving tests benchmarks

clean:
	rm -rf $(VENV) mlflow.db mlruns exports runs
