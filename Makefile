# The two commands of the README: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export GLOG_minloglevel := 2

.PHONY: demo test check lint zoo clean sample lite-env sysdeps

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# The Paddle Lite toolchain (Python 3.10 + Paddle 2.6 + paddlelite) lives in its own environment
# (~/.cache/vitdeploy/lite-env, or $$VITDEPLOY_LITE_ENV); setup is idempotent.
lite-env: $(STAMP)
	$(VENV)/bin/vitdeploy lite setup

# Debian packages the tests and the demo use (chromium for the report test; the C++ demo's
# toolchain): installed when missing if root with apt-get, else listed; never fails the build.
sysdeps:
	@sh scripts/sysdeps.sh

demo: sysdeps lite-env
	$(PY) samples/demo.py

# The full suite (CI runs this; ~35 min on 2 cores).
test: sysdeps lite-env
	$(VENV)/bin/ruff check vitdeploy tests samples scripts benchmarks
	@if command -v shellcheck >/dev/null 2>&1; then shellcheck scripts/*.sh; fi
	$(PY) -m pytest -q

# The fast tier for the inner loop (< 5 min): unit tests, in-process CLI tests, the sample's
# export; no conversions (tests marked slow, or using a conversion fixture: tests/conftest.py).
check: lite-env
	$(VENV)/bin/ruff check vitdeploy tests samples scripts benchmarks
	$(PY) -m pytest -q -m "not slow" --durations=5

lint: $(STAMP)
	$(VENV)/bin/ruff check vitdeploy tests samples scripts benchmarks
	@if command -v shellcheck >/dev/null 2>&1; then shellcheck scripts/*.sh; fi

# Retrain the bundled sample (deterministic; a few minutes on 2 cores).
sample: $(STAMP)
	$(PY) samples/train_digits.py

clean:
	rm -rf $(VENV) .cache build demo-out *.egg-info

# All 20 architectures through every runtime, with parity; rewrites docs/zoo.md (~30 min).
zoo: lite-env
	$(PY) scripts/zoo_matrix.py
