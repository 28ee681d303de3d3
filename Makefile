# sim-jax: `make demo` trains on the built-in demo corpus, `make test` runs the test suite,
# `make reproduce SCALE=smoke|cpu|paper [BETAS="0 0.001 0.01 0.1"] [DATA=<de Boer folder>] [ARGS=<more flags>]` the paper's
# SIM-vs-GIM experiment into workdirs/reproduce_<scale>/ (rerun to resume).
# Both create the virtual environment from requirements.txt first if it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

$(PY): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(PY)

.PHONY: venv demo test test-fast bench reproduce
SCALE ?= cpu
BETAS ?=
ARGS ?=
DATA ?= $(firstword $(wildcard data/de_boer ../shared/data/de_boer) data/de_boer)
empty :=
space := $(empty) $(empty)
comma := ,
venv: $(PY)

demo: $(PY)
	$(PY) train.py --config=configs/demo.py --workdir=workdirs/demo
	$(PY) probe.py --config=configs/demo.py --workdir=workdirs/demo --config.probe.task=speakers
	$(PY) probe.py --config=configs/demo.py --workdir=workdirs/demo --config.probe.task=vowels \
	  --config.probe.source=module_2 --config.probe.bias=False
	$(PY) probe.py --config=configs/demo.py --workdir=workdirs/demo --config.probe.task=vowels \
	  --config.probe.source=module_0 --config.probe.bias=False  # picks the decoder's sweep dimensions
	$(PY) decode.py --config=configs/demo.py --workdir=workdirs/demo
	$(PY) analyze.py --config=configs/demo.py --workdir=workdirs/demo

reproduce: $(PY)
	$(PY) reproduce.py --config=configs/reproduce.py --scale=$(SCALE) --workdir=workdirs/reproduce_$(SCALE) \
	  --config.data_root=$(DATA) $(if $(strip $(BETAS)),--betas=$(subst $(space),$(comma),$(strip $(BETAS)))) $(ARGS)

test: $(PY)
	$(PY) -m ruff check .
	$(PY) -m pytest tests -q -n 2 --dist loadfile --durations=15

test-fast: $(PY)
	$(PY) -m pytest tests -q -m "not slow"

bench: $(PY)
	$(PY) bench/train_step.py
	$(PY) bench/data.py
	$(PY) bench/probe.py
	$(PY) bench/embed.py
