# jitvision — `make demo` and `make test` do all set-up on a fresh Debian 12 machine (what is already there is
# skipped), build, then run. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := build

ROOT    := $(abspath .)
VENV    := $(ROOT)/.venv
PY      := $(VENV)/bin/python
BUILD   := $(ROOT)/build
TOOLCHAIN := $(BUILD)/conan/conan_toolchain.cmake
JOBS    ?= $(shell nproc)
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo)
APT_PACKAGES := cmake ninja-build g++ make pkg-config libopencv-dev libcli11-dev nlohmann-json3-dev libgtest-dev \
                xvfb x11-utils imagemagick clang-format graphviz libcurl4-openssl-dev
PYTEST_ARGS ?=

.PHONY: setup system-deps venv configure build demo test unit-test e2e-test slow-test lint models clean distclean triton-env

# Only setup, demo and test install system packages; build and configure expect them (`make setup` once).
SYSTEM_DEPS := $(if $(filter setup demo test,$(MAKECMDGOALS)),system-deps)

setup: system-deps venv $(TOOLCHAIN)

# Debian packages: install only the missing ones (apt-get update only when something is missing).
system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "== installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# Python virtual environment with the pinned torch wheel (which also provides LibTorch for the C++ build) and the
# jitvision package installed editable (pyproject.toml), with the tools of its `dev` extra (pytest, conan, ruff).
venv: $(VENV)/.installed
# A .venv that is a symbolic link (a git worktree sharing another checkout's venv) is left as it is.
$(VENV)/.installed: pyproject.toml VERSION
	@test -x $(PY) || python3 -m venv $(VENV)
	@if [ -L $(VENV) ]; then echo "== $(VENV) is shared with another checkout: not reinstalling jitvision"; else \
	  $(PY) -m pip install -q --disable-pip-version-check -e "$(ROOT)[dev]" && \
	  rm -f "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/jitvision-src.pth"; fi
	@touch $@

# Conan resolves conanfile.txt against Debian's packages (offline); see third_party/README.md for ConanCenter.
$(TOOLCHAIN): conanfile.txt third_party/conan/debian12 | $(VENV)/.installed
	$(VENV)/bin/conan install . -pr:a third_party/conan/debian12 -of $(BUILD)/conan

$(BUILD)/build.ninja: | $(SYSTEM_DEPS) $(VENV)/.installed $(TOOLCHAIN)
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_TOOLCHAIN_FILE=$(TOOLCHAIN) -DJITVISION_PYTHON=$(PY)

configure: $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

DEMO := $(BUILD)/demo
# The demo replaces its own outputs of an earlier run (--overwrite): `make demo` can run again.
demo: build
	@echo "== generating sample inputs (no external data needed; MNIST digits are used when JITVISION_DATA_DIR has them)"
	$(PY) -m jitvision mnist samples --out $(DEMO)/digits
	$(PY) -m jitvision data digits-video --out $(DEMO)/scene.mp4 --truth $(DEMO)/scene-truth.jsonl --frames 90
	@echo "== jitvision digits: one handwritten digit per photo"
	$(BUILD)/jitvision digits $(DEMO)/digits
	@echo "== jitvision detect: the bundled digit detector on a generated video"
	$(BUILD)/jitvision detect --model models/digits_yolov5n.torchscript --source $(DEMO)/scene.mp4 \
	  --json $(DEMO)/detect.jsonl --save-video $(DEMO)/detect.mp4 --overwrite
	@echo "== jitvision digits --source: detector finds the digits, the MNIST model reads each one"
	$(BUILD)/jitvision digits --source $(DEMO)/scene.mp4 --json --save-video $(DEMO)/digits-read.mp4 --overwrite \
	  > $(DEMO)/digits-read.jsonl
	@$(PY) -m jitvision.demo_report $(DEMO)
	@echo "== annotated videos: $(DEMO)/detect.mp4 $(DEMO)/digits-read.mp4 (add --show to watch live)"

unit-test: build
	cd $(BUILD) && ctest --output-on-failure

# The Triton env too, so that the server tests run; where it cannot be installed they skip, saying why.
e2e-test: build
	@$(MAKE) --no-print-directory triton-env || echo "== make triton-env failed: tests/test_triton_server.py skips"
	$(PY) -m pytest tests $(PYTEST_ARGS)

test: unit-test e2e-test

# The tests marked slow (a whole core-only build for tools/gpu-check, whole `make bench --quick` reports): minutes
# each, so outside `make test` and CI's budget.
slow-test: build
	JITVISION_SLOW_TESTS=1 $(PY) -m pytest tests -m slow $(PYTEST_ARGS)

# Triton Inference Server for `python -m jitvision triton serve` and tests/test_triton_server.py (docs/scale-out.md):
# the tritonserver inside the nvidia-pytriton wheel, in its own venv (it needs numpy<2), seeing .venv's torch through
# a .pth file, with the Python-backend stub for its Python version where the server looks for it. About a minute.
TRITON_VENV := $(ROOT)/.venv-triton
triton-env: $(TRITON_VENV)/.installed
$(TRITON_VENV)/.installed: | $(VENV)/.installed
	@test -x $(TRITON_VENV)/bin/python || $$($(PY) -c 'import sys; print(sys._base_executable)') -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/pip install -q --disable-pip-version-check nvidia-pytriton==0.7.0
	@site=$$($(TRITON_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  ver=$$($(TRITON_VENV)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > $$site/jitvision-torch.pth && \
	  cp $$site/pytriton/tritonserver/python_backend_stubs/$$ver/triton_python_backend_stub \
	    $$site/pytriton/tritonserver/backends/python/
	@touch $@

# ruff on the Python package and tests; clang-format (.clang-format) on the C++ sources, which it must leave as they are.
CXX_SOURCES = $(shell find native examples -name '*.cpp' -o -name '*.hpp' 2>/dev/null | sort)
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check python tests
	@echo "clang-format --dry-run --Werror on $(words $(CXX_SOURCES)) C++ files under native/ and examples/"
	@clang-format --dry-run --Werror $(CXX_SOURCES)

# Retrain and re-export the bundled MNIST model (needs the MNIST files; see models/mnist.md).
models:
	$(PY) -m jitvision mnist train --out models/mnist.torchscript

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(VENV)

# Both bench commands side by side on MNIST and yolov5n (needs $JITVISION_DATA_DIR for yolov5n.pt and zidane.jpg;
# falls back to the bundled digit detector and a synthetic video), and 4 concurrent copies of the video batched
# across streams vs --batch 1 (`jitvision bench --streams`): writes docs/BENCHMARKS.md and docs/benchmarks.png.
# Run it on an otherwise idle machine. BENCH_ARGS="--rounds 5" for more repetitions.
# `make bench BENCH_ARGS=--quick` is a smoke run (figures meaningless). With .venv-bench (make bench-env) the report
# also times ONNX Runtime and OpenVINO on the same model and input (python/jitvision/peers.py); without it, it says so.
BENCH_ARGS ?=
.PHONY: bench bench-env
bench: build
	$(PY) -m jitvision.benchreport $(BENCH_ARGS)

# The peers, in a bench-only package directory (never needed by make test or make demo). Pinned to the versions
# the report was made with; the project venv's numpy is the one used, so the copy pip brings along is removed.
BENCH_ENV   := $(ROOT)/.venv-bench
BENCH_PEERS := onnx==1.23.2 onnxruntime==1.32.0 openvino==2026.4.1
bench-env: $(BENCH_ENV)/.installed
$(BENCH_ENV)/.installed: | $(VENV)/.installed
	$(PY) -m pip install -q --disable-pip-version-check --target $(BENCH_ENV) $(BENCH_PEERS)
	cd $(BENCH_ENV) && rm -rf numpy numpy.libs numpy-*.dist-info bin
	@touch $@

# Report only (never part of build, test or lint): the functions over the project's size standard, cyclomatic
# complexity over 15 or more than 80 lines, in native/ and python/, by lizard from its own package directory.
LIZARD_ENV := $(ROOT)/.venv-lizard
.PHONY: complexity
complexity: $(LIZARD_ENV)/.installed
	@out=$$(PYTHONPATH=$(LIZARD_ENV) $(PY) -m lizard native python -C 15 -L 80 -w); \
	  if [ -n "$$out" ]; then echo "$$out"; fi; echo "$$(grep -c ': warning: ' <<< "$$out") functions over CCN 15 or 80 lines"
$(LIZARD_ENV)/.installed: | $(VENV)/.installed
	$(PY) -m pip install -q --disable-pip-version-check --target $(LIZARD_ENV) lizard==1.24.3
	@touch $@
