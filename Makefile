# Two-command set-up: `make demo` and `make test` each create or refresh .venv first.
# Targets: venv, sysdeps, bridges, demo, test, bench, clean, distclean.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# Rewritten after a successful install; editing any build input below triggers a reinstall.
STAMP := $(VENV)/.edgesnn-installed
BUILD_INPUTS := pyproject.toml setup.py $(wildcard edgesnn/*/_*.c)
PYTEST_ARGS ?=
SYSTEM_PACKAGES := python3-venv python3-dev gcc g++ espeak-ng fonts-noto-core

.PHONY: venv sysdeps bridges demo test bench clean distclean

# The checkout's root goes on the venv's path, so `python -m tools.NAME` runs from any folder.
venv: $(STAMP)
	@$(VPY) -c "import os, sysconfig; p = os.path.join(sysconfig.get_paths()['purelib'], 'edgesnn-checkout.pth'); open(p, 'w').write(os.getcwd() + '\\n')"

$(STAMP): $(BUILD_INPUTS)
	@$(MAKE) --no-print-directory sysdeps
	@echo "edgesnn: setting up $(VENV) (pip install -e '.[dev]')"
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -qq --upgrade pip
	$(VPY) -m pip install -qq --editable '.[dev]'
	$(VPY) -m pip install -qq --no-deps tonic==1.7.0 importRosbag
	@if [ -f edgesnn/engine/_ckernels.c ] && ! ls edgesnn/engine/_ckernels*.so >/dev/null 2>&1; then \
		echo "edgesnn: the C kernels did not build (see sysdeps above); the engine will use numpy"; fi
	@touch $@

# Debian 12's python3 needs python3-venv for `-m venv`; the optional C kernels need the
# Python headers and a C compiler, the trainer's spike kernels (tools/train/native.py) g++;
# the dataset generators need espeak-ng (spoken keywords) and fonts-noto-core (glyphs of many
# scripts).
# Installs them only as root with apt-get; otherwise says what is missing.
sysdeps:
	@missing=""; \
	$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	$(PYTHON) -c "import os, sys, sysconfig; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
		|| missing="$$missing python3-dev"; \
	cc=$$($(PYTHON) -c "import sysconfig; print((sysconfig.get_config_var('CC') or 'cc').split()[0])"); \
	command -v "$$cc" >/dev/null 2>&1 || missing="$$missing gcc"; \
	command -v g++ >/dev/null 2>&1 || missing="$$missing g++"; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	[ -d /usr/share/fonts/truetype/noto ] || missing="$$missing fonts-noto-core"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "edgesnn: installing system packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		{ apt-get update -qq >/dev/null && apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; } \
			|| echo "edgesnn: apt-get could not install$$missing; continuing"; \
	else \
		echo "edgesnn: missing system packages:$$missing; install with: sudo apt-get install$$missing (without python3-dev or gcc the engine runs on numpy alone)"; \
	fi

# The keyword story on the shipped models (espeak-ng speaks, the spotter listens, learns a word,
# keeps it across a restart), then the time-resolution adaptation contrast.
demo: venv
	$(VPY) -m tools.demo

# The Loihi 2 bridge runs Lava in its own environment (numpy<2); its tests use it.
bridges:
	bash firmware_bridges/loihi2/setup.sh

test: venv bridges
	$(VPY) -m pytest -q $(PYTEST_ARGS)

# Engine figures; the event decoders against the peer libraries installed by the `bench` extra.
bench: venv
	$(VPY) -m pip install -qq expelliarmus evlib
	$(VPY) tools/bench/engine.py
	$(VPY) tools/bench/events.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache $(STAMP)
	find edgesnn tests tools -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
	find edgesnn -name '*.so' -delete

distclean: clean
	rm -rf $(VENV)
