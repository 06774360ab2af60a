# Two commands a newcomer needs:  make book  (build the rendered book)  and  make test  (the whole suite).
# Both create .venv from requirements.txt on first use; only Python 3.11 (or newer) is required.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# trained models and generated data are shared by the book build and the tests
export MEDXAI_CACHE ?= $(CURDIR)/.medxai_cache

.PHONY: book book-clean test test-fast sync install clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

book: $(VENV)/.installed
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

book-clean: $(VENV)/.installed
	rm -rf _build
	$(MAKE) book

test: $(VENV)/.installed
	$(PY) -m pytest -q -ra --durations=15

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow and not notebook"

sync: $(VENV)/.installed
	$(VENV)/bin/jupytext --sync notebooks/*.py

clean:
	rm -rf _build .pytest_cache
