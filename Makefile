# Set-up and the main entry points. `make demo` and `make test` install
# everything they need on first use (see tools/install.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test env demo

install: $(STAMP)

$(STAMP): tools/install.sh requirements/*.txt setup.py
	VENV=$(abspath $(VENV)) bash tools/install.sh
	touch $@

env: $(STAMP)
	$(PY) tools/check_env.py

test: $(STAMP)
	$(PY) -m pytest tests

demo: $(STAMP)
	$(PY) tools/demo.py

.PHONY: demo-seg demo-pose
demo-seg: $(STAMP)
	$(PY) tools/demo.py --task seg

demo-pose: $(STAMP)
	$(PY) tools/demo.py --task pose
