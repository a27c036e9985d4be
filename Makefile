# needle: every command sets itself up first (a virtual environment in .venv).
#   make book        environment + install + render the book from the executed notebooks
#   make test        environment + install + every test (unit, notebooks, book build, browser),
#                    then the notebook checks again on another CPU code path
#   make reproduce PROFILE=cpu   re-execute the pages of a profile's edition into book/, read-only from
#                    its store (python -m needle_core reproduce --train trains what is missing first)
#   make test-other-cpu  the notebook checks again, retrained on another CPU code path (part of make test)
#   make test-colab      the Colab simulation: fresh venv, torch only, the package from its sdist (PyPI)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= smoke
STAMP := $(VENV)/.installed

.PHONY: setup browser book reproduce test test-other-cpu test-colab clean

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
	$(MAKE) test-other-cpu

# The notebooks' checked numbers must hold on any machine (issue 12): retrain the smoke stores
# (scratch, ignored by git) with other CPU kernels (avx2 where the default is avx512, else the
# scalar ones) and 2 threads for what the notebooks compute themselves (the sweeps train with
# their profile's thread count), and check every notebook again.
OTHER_CPU = $(shell $(PY) -c "import torch; print('avx2' if 'AVX512' in torch.backends.cpu.get_cpu_capability() else 'default')" 2>/dev/null)
test-other-cpu: setup
	rm -rf runs/smoke runs/smoke-ntrain
	ATEN_CPU_CAPABILITY=$(OTHER_CPU) OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 $(PY) -m pytest notebooks -q -p no:cacheprovider

# The book's notebooks as Colab runs them (tests/test_book.py::test_colab_simulation): a fresh
# virtual environment with torch only, the package installed from a wheel of its sdist (its
# dependencies from PyPI: needs the network), papermill in a folder outside the repository.
test-colab: setup
	$(PY) -m pytest tests/test_book.py -m colab -q -s -p no:cacheprovider

clean:
	rm -rf _build
