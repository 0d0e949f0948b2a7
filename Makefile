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
	$(VENV)/bin/lifelong train CartPole-v1 --config examples/cartpole.yaml --out $(RUN_DIR) --overwrite
	$(VENV)/bin/lifelong report $(RUN_DIR)

# Two xdist workers (one per core); every test process uses one torch thread.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 -p no:cacheprovider

BENCH_DIR ?= runs/benchmarks

bench: $(STAMP)
	$(PY) benchmarks/optim_step.py
	$(PY) benchmarks/vgs_overhead.py
	$(PY) benchmarks/checkpoint_io.py
	$(PY) benchmarks/vs_sb3.py --quick
	$(PY) benchmarks/speed.py --variant ours --variant ours-autograd --rounds 4 --jsonl $(BENCH_DIR)/speed.jsonl
	$(PY) benchmarks/suite.py --quick --jsonl $(BENCH_DIR)/suite_quick.jsonl --profile $(BENCH_DIR)/suite_quick.png
	$(PY) benchmarks/huber_kappa.py
	$(PY) benchmarks/pbt_scaling.py
	$(PY) benchmarks/plasticity_digits.py --out $(BENCH_DIR)
	$(PY) benchmarks/continual_rl.py --out $(BENCH_DIR)

clean:
	rm -rf $(VENV) runs build *.egg-info
