# Two commands do all the set-up (each creates or refreshes .venv when needed):
#   make demo   run `threecad demo` on the built-in sample
#   make test   run the whole test suite
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean chromium

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test,dask,model,fiftyone,browser]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/threecad demo

test: $(STAMP) chromium
	$(VENV)/bin/python -m pytest -n auto -q

# The FiftyOne app check needs Debian's chromium; install it when we may (root, apt).
chromium:
	@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: /usr/bin/chromium missing and not installable here; the app check will be skipped"; }

bench: $(STAMP)
	$(VENV)/bin/python scripts/bench_stats.py

clean:
	rm -rf $(VENV) build *.egg-info
