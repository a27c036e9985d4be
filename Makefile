# needle: every command sets itself up first (a virtual environment in .venv).
#   make book        environment + install + render the book from the executed notebooks
#   make test        environment + install + every test (unit, notebooks, book build, browser)
#   make reproduce PROFILE=cpu   re-run the sweeps and notebooks of a profile into book/
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= smoke
STAMP := $(VENV)/.installed

.PHONY: setup browser book reproduce test clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# Headless Chromium for the browser test of the built book (Debian's package).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

book: setup
	$(VENV)/bin/jupyter-book build book --warningiserror --keep-going

reproduce: setup
	$(PY) -m needle_core reproduce --profile $(PROFILE)

test: setup browser
	$(PY) -m pytest

clean:
	rm -rf _build
