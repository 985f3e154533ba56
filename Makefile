# RPS Quest: `make run` plays, `make test` checks. Everything lives in .venv inside the repo.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# checkov (scans the Helm chart's manifests in tests/test_chart.py) pins dozens of packages older than the
# project's: it lives in a venv of its own.
CHECKOV := .venv-checkov/bin/checkov
CHECKOV_VERSION := 3.3.30
DATA_DIR ?= ./data
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: this exact pin is the CPU build; anything else pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[train,test]'
	touch $(STAMP)

$(CHECKOV):
	python3 -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install -q checkov==$(CHECKOV_VERSION)

install: $(STAMP) $(CHECKOV)
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will be skipped"

run: $(STAMP)
	$(VENV)/bin/rpsquest up --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

test: install
	node --test tests/js/
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .venv-checkov test-artifacts
