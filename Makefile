# Two commands set up a fresh machine: `make run` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?= config/example.yaml
# Debian packages the project uses: tcpdump (scapy's BPF compiler), tshark and
# tcpreplay (benchmarks, live replay tests), libndpi-bin (ndpiReader, the sensor
# benchmark's peer), prometheus (promtool), chromium (report rendering test),
# iproute2 (network namespaces), curl (proxy tests), postgresql (the trust's central store: the tests
# start a throw-away server from its binaries, as an unprivileged user), gcc, libc6-dev and python3-dev
# (the optional compiled frame triage; without them the install uses the Python one).
DEBS   := tcpdump tshark tcpreplay libndpi-bin prometheus chromium iproute2 curl sqlite3 nftables systemd \
          postgresql gcc libc6-dev python3-dev

.PHONY: install run test quick lint bench clean debs

install: $(STAMP)

# setup.py compiles the optional frame triage (monitor/capture/_triage.pyx) in place: a change rebuilds it
$(STAMP): pyproject.toml setup.py monitor/capture/_triage.pyx
	@$(MAKE) --no-print-directory debs
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

# Debian packages are installed only when running as root on a Debian-like
# system and only those that are missing; otherwise the tests that need them skip.
debs:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	fi

run: install
	$(VENV)/bin/social-monitor run --config $(CONFIG)

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest

# quick feedback while working: lint, types and the tests that start no process (~30 s)
quick: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -m "not integration" -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info monitor/capture/_triage.*.so
