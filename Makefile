# `make run`  : create .venv, install, train the default agent and write a report.
# `make test` : create .venv, install, run the test suite.
# `make bench`: the benchmarks (minutes to tens of minutes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/cartpole

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,ray,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) benchmarks/optim_step.py

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/optim_step.py

clean:
	rm -rf $(VENV) runs build *.egg-info
