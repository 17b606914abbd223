# Quick start: `make demo` (runs the agent end to end here), `make try` (a shell to send your own
# events to it) and `make test` (the whole suite);
# `make test-system` boots systemd in Debian trees and runs the .deb there (slower; CI runs both);
# `make test-matrix` runs the fast tests on Python 3.6..3.13 with each distribution's libraries.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# System tools the suite drives, and what needs each (said when make installs them).
APT_TOOLS := tinyproxy lintian rpm shellcheck faketime icinga2-bin prometheus-alertmanager curl
why_tinyproxy := a real HTTP proxy for the proxy tests (tests/test_faults_matrix.py, test_daemon.py)
why_lintian := checks the .deb as Debian would (tests/test_packaging.py)
why_rpm := rpmbuild and rpm, to build and inspect the .rpm (tests/test_packaging.py, make rpm)
why_faketime := libfaketime, to step the daemon's and pd-send's clock (tests/test_daemon_operations.py)
why_prometheus-alertmanager := a real Alertmanager paging through pd-listen (tests/test_pd_listen_alertmanager.py)
why_curl := posts PagerDuty's documented example bodies to pd-listen (tests/test_pd_listen.py)
why_shellcheck := checks the package's shell scripts (tests/test_packaging.py)
why_icinga2-bin := loads the Icinga 2 example config and runs its functions (tests/test_integrations.py)
# ... and the systemd system tests'.
SYSTEM_TEST_TOOLS := debootstrap
why_debootstrap := builds the Debian trees systemd boots in (tests/test_system_systemd.py)
# ... and the Python matrix's.
MATRIX_TOOLS := patchelf
why_patchelf := points the copied Pythons at their own libpython (scripts/python_matrix.py)

.PHONY: demo try test test-system test-matrix lint bench deb rpm system-tools system-test-tools matrix-tools clean

# The checkout's commands, each bin/'s launcher (bin/_launch) under its name.
COMMANDS := $(filter-out _launch,$(notdir $(wildcard bin/*)))
# The local users make demo, make try and the tests create (scripts/harness.py); make clean
# removes them (as root).
TEST_USERS := pdagent-test pdagent-test-other

# pdagent runs from this checkout through a plain path entry (a .pth file) and bin/'s
# launcher: edits take effect without a reinstall, and nothing but the path entry is added
# to pd-send's start-up (it is benchmarked; an editable install's import hook would cost it).
# `pip install .` brings the dependencies setup.py names; its copy of pdagent is then removed.
$(VENV)/.installed: setup.py requirements-test.txt bin/_launch
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet . -r requirements-test.txt
	$(PY) -m pip uninstall --quiet --yes pdagent
	echo "$(CURDIR)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/pdagent-checkout.pth"
	for command in $(COMMANDS); do \
		sed '1s|.*|#!$(CURDIR)/$(PY)|' bin/_launch > $(VENV)/bin/$$command && chmod 0755 $(VENV)/bin/$$command; \
	done
	rm -rf build pdagent.egg-info
	touch $@

venv: $(VENV)/.installed

# apt-get install whichever of the packages $(1) are missing (as root; otherwise says so),
# one line per package saying what needs it.
define apt_install
	@missing=""; why=""; \
	$(foreach tool,$(1),dpkg -s $(tool) >/dev/null 2>&1 || { missing="$$missing $(tool)"; why="$$why  $(tool): $(why_$(tool))\n"; };) \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			printf 'installing system tools with apt-get (and the packages they depend on):\n%b' "$$why"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else printf 'not root: cannot install these system tools; the tests that need them will be skipped:\n%b' "$$why"; fi; \
	fi
endef

system-tools:
	$(call apt_install,$(APT_TOOLS))

system-test-tools:
	$(call apt_install,$(SYSTEM_TEST_TOOLS))

matrix-tools:
	$(call apt_install,$(MATRIX_TOOLS))

lint: venv
	$(VENV)/bin/ruff check .

test: venv system-tools lint
	$(PY) -m compileall -q pdagent
	$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$status

# The .deb, and the README's install without a package, under a real systemd in Debian 11/12/13
# trees (tests/test_system_systemd.py, test_system_pip_install.py; root, network).
test-system: venv system-tools system-test-tools
	PDAGENT_SYSTEMD_TESTS=1 $(PY) -m pytest -s --durations=0 tests/test_system_systemd.py tests/test_system_pip_install.py; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$status

# The fast tests on every pyenv Python 3.6..3.13, each with a distribution's library versions
# (constraints/; venvs cached in .matrix/). `make test-matrix ROWS="rhel-8 debian-13"`: those rows.
test-matrix: venv system-tools matrix-tools
	$(PY) scripts/python_matrix.py $(ROWS)

demo: venv
	$(PY) scripts/demo.py

# A shell where pd-send and pd-queue talk to a pdagentd delivering to the local stand-in.
try: venv
	$(PY) scripts/demo.py --shell

bench: venv
	$(PY) -m compileall -q pdagent
	$(PY) bench/bench_pd_send.py
	$(PY) bench/bench_daemon.py

deb:
	packaging/build-deb.sh

rpm: system-tools
	PDAGENT_RPM_TARGET=el9 packaging/build-rpm.sh
	PDAGENT_RPM_TARGET=el8 packaging/build-rpm.sh

clean:
	rm -rf $(VENV) .matrix dist build tmp *.egg-info .pytest_cache .ruff_cache
	@if [ "$$(id -u)" = 0 ]; then for user in $(TEST_USERS); do \
		if getent passwd $$user >/dev/null; then userdel $$user && echo "removed the test user $$user"; fi; \
	done; fi
