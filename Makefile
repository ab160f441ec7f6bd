# The two commands of the README: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export GLOG_minloglevel := 2

.PHONY: demo test check check-other arm-check lint zoo zoo-arm clean sample lite-env sysdeps

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
	$(PY) scripts/check_layers.py
	@if command -v shellcheck >/dev/null 2>&1; then shellcheck scripts/*.sh; fi
	$(PY) -m pytest -q

# The fast tier for the inner loop (< 5 min): unit tests, in-process CLI tests, the sample's
# export; no conversions (tests marked slow, or using a conversion fixture: tests/conftest.py).
check: lite-env
	$(VENV)/bin/ruff check vitdeploy tests samples scripts benchmarks
	$(PY) scripts/check_layers.py
	$(PY) -m pytest -q -m "not slow" --durations=5

# The fast tier run as another machine would look: a 60-character CPU name and no AVX-512, VNNI or
# BF16 (twice a suite green where it was written went red on the next machine). The ISA-dependent
# paths follow $$VITDEPLOY_CPU_FLAGS (OpenVINO's bf16 fallback among them: its tests run too).
OTHER_CPU := Other Vendor(R) Imaginary(TM) Processor 9999X 64-Core 1.0GHz
check-other: lite-env
	VITDEPLOY_CPU_NAME="$(OTHER_CPU)" VITDEPLOY_CPU_FLAGS="sse4_2 avx avx2 fma" \
		$(PY) -m pytest -q -m "not slow" -p no:cacheprovider
	VITDEPLOY_CPU_NAME="$(OTHER_CPU)" VITDEPLOY_CPU_FLAGS="sse4_2 avx avx2 fma" \
		$(PY) -m pytest -q -p no:cacheprovider tests/check/test_parity.py -k bf16

# Paddle Lite's ARM kernels, built from the source vitdeploy ships (~5 min per ABI on 2 cores,
# once: cached in ~/.cache/vitdeploy/lite-arm), and the tests that need them (make test runs them
# when the build exists, and skips them, saying why, while it is absent).
ARM_ABIS ?= armv8 armv7
arm-check: lite-env
	@VITDEPLOY_SYSDEPS_ARM=1 sh scripts/sysdeps.sh
	for abi in $(ARM_ABIS); do $(VENV)/bin/vitdeploy lite setup --arm $$abi || exit 1; done
	$(PY) -m pytest -q -p no:cacheprovider tests/lite/test_lite_arm.py tests/bundles -k "arm"

lint: $(STAMP)
	$(VENV)/bin/ruff check vitdeploy tests samples scripts benchmarks
	$(PY) scripts/check_layers.py
	@if command -v shellcheck >/dev/null 2>&1; then shellcheck scripts/*.sh; fi

# Retrain both bundled samples, digits and hard digits (docs/samples.md; deterministic; minutes
# each on 2 cores).
sample: $(STAMP)
	$(PY) samples/train_digits.py
	$(PY) samples/train_hard_digits.py

clean:
	rm -rf $(VENV) .cache build demo-out *.egg-info

# All 20 architectures through every runtime, with parity; rewrites docs/zoo.md (~30 min).
zoo: lite-env
	$(PY) scripts/zoo_matrix.py

# Every architecture on Paddle Lite's ARM kernels under emulation, spliced into docs/zoo.md as its
# "ARM kernels" section (~1.5 h on 2 cores; resumable; `make zoo` leaves that section out).
zoo-arm: lite-env
	for abi in $(ARM_ABIS); do $(VENV)/bin/vitdeploy lite setup --arm $$abi || exit 1; done
	$(PY) scripts/zoo_matrix.py --arm-only
