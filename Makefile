# Two entry points for a fresh machine: `make demo` (the main job on generated demo data) and
# `make test`. Both set up the environment first; `make install` alone does only that.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmseg_clip_wsss_installed
PYTEST_ARGS ?=

.PHONY: install test demo det-demo clean

install: $(STAMP)

$(STAMP): tools/install_env.sh setup.py requirements/torch.txt requirements/build.txt \
          requirements/runtime.txt requirements/mm.txt requirements/tests.txt
	VENV=$(VENV) PYTHON=$(PYTHON) bash tools/install_env.sh
	@touch $@

# the layer contract first (.importlinter, docs/architecture.md), then the tests
test: install
	$(VENV)/bin/lint-imports
	$(PY) -m pytest tests -q -p no:cacheprovider $(PYTEST_ARGS)

demo: install
	$(PY) tools/run_demo.py --work-dir work_dirs/demo

# weakly supervised detection on the demo data: GT boxes vs boxes from the demo's pseudo masks
det-demo: demo
	$(PY) tools/run_det_demo.py

clean:
	rm -rf work_dirs build *.egg-info
