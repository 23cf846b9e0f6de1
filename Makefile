# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The install is redone only when pyproject.toml changes (stamp keyed on its hash).
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml 2>/dev/null | cut -c1-12)
RUN_NAME := demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test test-all lint bench install clean chromium

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing torch==2.13.0 (CPU) first, then physlm with its extras into $(VENV)"
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,report,benchmark]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# Debian's chromium renders the report's PNGs (kaleido) and runs the report's browser test.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing Debian's chromium (for PNG figures and the report's browser test)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	    echo "warning: could not install chromium; PNG export and the browser test will be skipped"; }

demo: $(STAMP) chromium
	@mkdir -p runs
	$(VENV)/bin/physlm run cfg --out runs/$(RUN_NAME)

test: $(STAMP) chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

test-all: $(STAMP) chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
