# RPS Quest: `make run` plays, `make test` checks. Everything lives in .venv inside the repo.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# pip-tools (make lock) and pip-audit (make audit) live in their own venv, apart from the project's.
TOOLS := .tools
TOOLS_STAMP := $(TOOLS)/.installed
# checkov (scans the Helm chart's manifests in tests/test_chart.py) pins dozens of packages older than the
# project's: it lives in a venv of its own.
CHECKOV := .venv-checkov/bin/checkov
CHECKOV_VERSION := 3.3.30
# The engine's hot modules compiled with mypyc (tools/compile_engine.py; engine/__init__.py says when they are used).
# A failed build leaves the pure-Python engine, and is not retried until the sources change.
ENGINE_STAMP := engine/_compiled.stamp
ENGINE_HOT := $(addprefix engine/,rules.py features.py predictor.py policy.py bot.py __init__.py)
DATA_DIR ?= ./data
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test bench lint audit lock clean

# Every dependency at the version and hash the lock names (torch's is the CPU build: any other torch pulls
# a CUDA build), then the project itself, built with the lock's setuptools.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(ENGINE_STAMP): $(STAMP) $(ENGINE_HOT) tools/compile_engine.py
	$(PY) tools/compile_engine.py || echo "engine: not compiled, the pure-Python engine runs"
	touch $(ENGINE_STAMP)

$(CHECKOV):
	python3 -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install -q checkov==$(CHECKOV_VERSION)

install: $(STAMP) $(ENGINE_STAMP) $(CHECKOV)
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will be skipped"
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || echo "postgresql not installed: PostgreSQL tests will be skipped"

run: $(STAMP) $(ENGINE_STAMP)
	$(VENV)/bin/rpsquest up --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

test: install
	node --test tests/js/
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP) $(ENGINE_STAMP)
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

$(TOOLS_STAMP):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q pip-tools==7.6.2 pip-audit==2.10.1
	touch $(TOOLS_STAMP)

# Known vulnerabilities of every locked package. pip-audit asks PyPI's JSON API (AUDIT_FLAGS='-s osv' asks
# osv.dev): where neither answers, it lists each package as skipped instead of audited.
audit: $(TOOLS_STAMP)
	$(TOOLS)/bin/pip-audit --require-hashes --disable-pip --progress-spinner off -r $(LOCK) $(AUDIT_FLAGS)

# Re-resolve the lock after a change to pyproject.toml (pins already in it are kept; --upgrade moves them).
lock: $(TOOLS_STAMP)
	CUSTOM_COMPILE_COMMAND="make lock" $(TOOLS)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras \
		--extra train --extra test --no-emit-index-url --no-emit-find-links -o $(LOCK) $(LOCK_FLAGS) pyproject.toml

clean:
	rm -rf $(VENV) $(TOOLS) .venv-checkov test-artifacts engine/_compiled $(ENGINE_STAMP)
