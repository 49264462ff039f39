# Two commands do everything: `make demo` runs the main job, `make test` the tests. The first run of either
# creates .venv and installs the package with every extra (torch pinned to its CPU build by constraints.txt).

PYTHON ?= python3
VENV ?= .venv
INSTALLED := $(VENV)/.installed

.PHONY: demo test install

demo: $(INSTALLED)
	$(VENV)/bin/rerank-kit demo

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest -q

install: $(INSTALLED)

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -c constraints.txt -e ".[all,dev]"
	touch $(INSTALLED)
