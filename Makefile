# raftlog developer entry points. `make test` and `make demo` do all the set-up they need
# on a fresh machine: they create .venv and install the package into it.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# pytest-xdist workers: the default suite is sized for a 2-core machine.
JOBS   ?= auto

.PHONY: help venv venv-test system-deps test lint typecheck unit demo sim sim-long bench soak chaos fuzz test-tls grade-lab clean screenshots

help:
	@echo "make demo      create .venv, install, run a local 3-node cluster with the lab's client"
	@echo "make test      create .venv, install with test extras, lint, typecheck, run the suite"
	@echo "make sim-long  3000 simulated runs over 3, 5 and 7 nodes with every fault"
	@echo "make bench     raftlog vs etcd and PySyncObj side by side (bench/results/); simulator runs/s; growth; catch-up; transfer"
	@echo "make soak      the snapshot process test with 200,000 appends"
	@echo "make test-tls  the process tests with every cluster on TLS (both planes)"
	@echo "make chaos     three 5-minute raftlog chaos runs (3 and 5 nodes; lease reads with the leader paused), reports in chaos-out/"
	@echo "make fuzz      1,000,000 fuzz inputs over the peer and client decoders (FUZZ_SEED=S), failures in fuzz-failures/"
	@echo "make screenshots  the README's dashboard screenshots (docs/images/), by the browser tests"
	@echo "make grade-lab the reference lab node and raftlog through raftlog grade at the lab's timings (root)"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

venv: $(VENV)/.installed
venv-test: $(VENV)/.installed-test

lint: venv-test
	$(PY) -m ruff check src tests
	$(PY) -m ruff format --check src tests

typecheck: venv-test
	$(PY) -m mypy

system-deps:
	bash scripts/install-system-deps.sh

unit: venv-test system-deps
	$(PY) -m pytest -n $(JOBS)

# pytest exits 5 when it collects no test; make treats every non-zero exit as failure.
test: lint typecheck unit

# The process tests again, every cluster with TLS on both planes (a throwaway CA).
test-tls: venv-test system-deps
	RAFTLOG_TEST_TLS=1 $(PY) -m pytest -n $(JOBS) tests/process

# The README's dashboard screenshots (docs/images/), taken by the browser tests.
screenshots: venv-test system-deps
	RAFTLOG_SCREENSHOTS=1 $(PY) -m pytest -q tests/dashboard

# The lab's cluster on this machine: 3 node processes with the lab's timings; the lab's
# client appends SET 5 and ADD 1 over XML-RPC; every node's log is shown; Ctrl-C stops.
demo: venv
	$(PY) -m raftlog cluster --nodes 3 --lab-client

sim-long: venv
	$(PY) -m raftlog sim --seeds 3000 --nodes 3,5,7 --faults all

# raftlog, etcd (3 members, Debian's etcd-server) and PySyncObj (a virtualenv of its own
# under ~/.cache/raftlog) side by side in one run, with ratios and the goals met; results
# in bench/results/ (JSON and a PNG chart). Then the single-purpose benchmarks.
STAMP := $(shell date -u +%Y%m%d-%H%M%S)
bench: venv system-deps
	$(PY) -m pip install --quiet -e '.[report,fast]'
	mkdir -p bench/results
	$(PY) -m raftlog bench --compare etcd,pysyncobj \
		--workloads throughput,latency,failover,catchup,library \
		--json bench/results/bench-$(STAMP).json --chart bench/results/bench-$(STAMP).png
	$(PY) -m raftlog sim --seeds 1000 --nodes 3 --faults all
	$(PY) -m raftlog bench --what growth --entries 10000,100000,1000000
	$(PY) -m raftlog bench --what catchup --entries 100000
	$(PY) -m raftlog bench --what transfer

# The snapshot process test at full size (the default suite runs it with 30,000 appends).
soak: venv-test
	RAFTLOG_SNAPSHOT_APPENDS=200000 $(PY) -m pytest -s tests/process/test_snapshots.py

# Longer chaos runs than the default suite's 60 s one (results and reports in chaos-out/).
chaos: venv
	$(PY) -m raftlog chaos --nodes 3 --time 300 --nemesis kill,pause,partition,restart-all --clients 8 --out chaos-out/3-nodes
	$(PY) -m raftlog chaos --nodes 5 --time 300 --nemesis kill,pause,partition,restart-all --clients 10 --out chaos-out/5-nodes
	$(PY) -m raftlog chaos --nodes 3 --time 300 --reads lease --nemesis pause,pause-leader,pause-leader-acks,partition --clients 8 --out chaos-out/3-nodes-lease

# The fuzz targets of tests/fuzz at full size (the default suite runs each a few hundred
# times): counts per target, rejections by reason, failures saved in fuzz-failures/.
FUZZ_INPUTS ?= 1000000
FUZZ_SEED   ?= 1
fuzz: venv-test
	$(PY) tests/fuzz/run_fuzz.py --inputs $(FUZZ_INPUTS) --seed $(FUZZ_SEED) --out fuzz-failures

# raftlog grade at the lab's own timings (6-10 s elections, 2 s heartbeats): the bundled
# reference lab node, then raftlog's own nodes with all four runs (the default suite runs
# the reference at x 0.1 and raftlog's dead-leader and dead-follower runs only); reports
# in grade-out/. Root (namespaces); each grade takes the namespace tests' lock.
NETNS_LOCK := /tmp/raftlog-netns-tests.lock
grade-lab: venv
	flock $(NETNS_LOCK) $(PY) -m raftlog grade --reference --timings lab --attempts 2 --out grade-out/reference
	flock $(NETNS_LOCK) $(PY) -m raftlog grade --raftlog --timings lab --out grade-out/raftlog
	$(PY) -m raftlog grade --table grade-out/reference grade-out/raftlog

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
