# Two commands do all the set-up (each creates or refreshes .venv when needed):
#   make demo   run `threecad demo` on the built-in sample
#   make test   run the whole test suite
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test,dask]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/threecad demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n auto -q

bench: $(STAMP)
	$(VENV)/bin/python scripts/bench_stats.py

clean:
	rm -rf $(VENV) build *.egg-info
