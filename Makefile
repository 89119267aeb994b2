# Set-up and the main entry points. `make demo` and `make test` install
# everything they need on first use (see tools/install.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-avx2 noise lint format env demo shell

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

# OpenMMLab's style: flake8, isort and yapf (settings in setup.cfg), and
# the pre-commit-hooks checks OpenMMLab's pre-commit runs, on the tracked
# text files (no symlinks, no binary fixtures)
LINT_PATHS := mmregionvit tools tests configs setup.py
BIN := $(abspath $(VENV))/bin
TEXT_FILES := git ls-files --eol | awk -F'\t' '$$1 !~ /^i\/(-text)? /' | cut -f2

lint: $(STAMP)
	$(PY) -m flake8 $(LINT_PATHS)
	$(PY) -m isort --check-only --diff $(LINT_PATHS)
	$(PY) -m yapf --diff --recursive --parallel $(LINT_PATHS)
	$(TEXT_FILES) | xargs -d '\n' $(BIN)/check-merge-conflict --assume-in-merge
	$(TEXT_FILES) | grep -E '\.ya?ml$$' | xargs -r -d '\n' $(BIN)/check-yaml
	$(TEXT_FILES) | xargs -d '\n' $(BIN)/mixed-line-ending --fix=no
	@# the two fixers run on a copy, so lint only reports (make format fixes)
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(TEXT_FILES) | xargs -d '\n' cp --parents -t "$$tmp" && cd "$$tmp" && \
	files=$$(find . -type f) && \
	$(BIN)/trailing-whitespace-fixer $$files; tw=$$?; \
	$(BIN)/end-of-file-fixer $$files; eof=$$?; \
	[ $$tw$$eof = 00 ] || { echo 'lint: trailing whitespace or end-of-file' \
	  'newlines in the files above (left as they are): make format fixes' \
	  'them'; exit 1; }

format: $(STAMP)
	$(PY) -m isort $(LINT_PATHS)
	$(PY) -m yapf --in-place --recursive --parallel $(LINT_PATHS)
	$(TEXT_FILES) | xargs -d '\n' $(BIN)/trailing-whitespace-fixer || true
	$(TEXT_FILES) | xargs -d '\n' $(BIN)/end-of-file-fixer || true

test: lint
	$(PY) -m pytest tests

# The equality tests (official outputs, detectron2, ONNX, OpenVINO, timm):
# their bounds come from noise measured over instruction sets
# (tests/tolerances.py)
EQUALITY_TESTS := tests/test_backbone_golden.py tests/test_timm.py \
	tests/test_convert_tool.py tests/test_detectron2_convert.py \
	tests/test_onnx_export.py tests/test_attention.py tests/test_openvino.py

# The equality tests again with AVX2 kernels, as another x86 CPU computes
test-avx2: $(STAMP)
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
		$(PY) -m pytest -m "not slow" $(EQUALITY_TESTS)

# The largest error of every equality check under three instruction sets and
# 1 and 2 threads (six runs of the equality tests; NOISE_ARGS='-m "not slow"'
# leaves the slow tier out)
NOISE_ARGS ?=
noise: $(STAMP)
	$(PY) tests/tolerances.py $(EQUALITY_TESTS) $(NOISE_ARGS)

demo: $(STAMP)
	$(PY) tools/demo.py

.PHONY: demo-seg demo-pose
demo-seg: $(STAMP)
	$(PY) tools/demo.py --task seg

demo-pose: $(STAMP)
	$(PY) tools/demo.py --task pose
