# Set-up and the main entry points. `make demo` and `make test` install
# everything they need on first use (see tools/install.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint format env demo shell

install: $(STAMP)

$(STAMP): tools/install.sh requirements/*.txt setup.py
	VENV=$(abspath $(VENV)) bash tools/install.sh
	touch $@

env: $(STAMP)
	$(PY) tools/check_env.py

# a bash with the virtual environment activated after the user's ~/.bashrc
# (which may set PATH): `python` is $(PY) there; `exit` leaves it
shell: $(STAMP)
	@echo "$(VENV) activated: python is $(PY); exit to leave"
	@bash -c 'exec bash --rcfile <(echo ". ~/.bashrc 2>/dev/null; \
		. \"$$0/bin/activate\"") -i' "$(abspath $(VENV))"

# OpenMMLab's style: flake8, isort and yapf (settings in setup.cfg)
LINT_PATHS := mmregionvit tools tests configs setup.py

lint: $(STAMP)
	$(PY) -m flake8 $(LINT_PATHS)
	$(PY) -m isort --check-only --diff $(LINT_PATHS)
	$(PY) -m yapf --diff --recursive --parallel $(LINT_PATHS)

format: $(STAMP)
	$(PY) -m isort $(LINT_PATHS)
	$(PY) -m yapf --in-place --recursive --parallel $(LINT_PATHS)

test: lint
	$(PY) -m pytest tests

demo: $(STAMP)
	$(PY) tools/demo.py

.PHONY: demo-seg demo-pose
demo-seg: $(STAMP)
	$(PY) tools/demo.py --task seg

demo-pose: $(STAMP)
	$(PY) tools/demo.py --task pose
