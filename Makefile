# Two commands do all the setup on a fresh Debian 12 machine (see README):
#   make demo   run the kiosk with a seeded roster and a simulated reader
#   make test   run every test (lint included)
# Both install what is missing: Debian packages (when run as root), uv, the locked environment.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian packages the kiosk and its tests use:
#   pcscd, libpcsclite-dev, swig   PC/SC card readers (pyscard builds against libpcsclite)
#   vsmartcard-vpcd, pcsc-tools    the virtual reader the card tests present cards to
#   chromium, fonts-noto-cjk       touchscreen browser and Chinese glyphs (UI tests, kiosk-ui)
#   espeak-ng                      spoken prompts
#   sqlite3                        for technicians inspecting the database
#   python3-pip                    to bootstrap uv where it is missing
#   postgresql                     the reference county platform's database in tests
#   cage                           Wayland kiosk compositor for the touchscreen (kiosk-ui)
#   xwayland                       cage will not start without the Xwayland binary
#   shellcheck                     checks systemd/install.sh in the tests
#   alsa-utils                     aplay: the speaker's player (installed terminals speak)
#   grim                           screenshots from inside cage (tests/systemd, kiosk-ui)
APT_PACKAGES := pcscd libpcsclite-dev swig vsmartcard-vpcd pcsc-tools chromium fonts-noto-cjk \
	espeak-ng sqlite3 python3-pip postgresql cage shellcheck xwayland alsa-utils grim

UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PYTEST_ARGS ?=
# Tests run on two xdist workers (the terminal-class machine has 2 cores); tests sharing a
# global resource (pcscd and the vpcd ports, one daemon per module) carry an xdist_group mark
# and stay on one worker. PYTEST_XDIST= (empty) runs them in one process.
PYTEST_XDIST ?= -n 2 --dist loadgroup

.PHONY: help setup system-deps uv venv demo run test test-fast lint format pytest soak dlib-blas clean \
	bundle systemd-host-test systemd-host-test-blas systemd-host-test-bundle systemd-host-test-bare \
	systemd-host-measure

help:
	@echo "make demo    run the kiosk demo (http://127.0.0.1:8080/)"
	@echo "make test    lint and run every test"
	@echo "make test-fast  the edit-test loop: tests not marked slow, in parallel, no lint"
	@echo "make lint    ruff, ruff format --check, mypy strict, import contracts"
	@echo "make run     the daemon with ./config.yaml"
	@echo "make bench   the benchmarks against DESIGN.md's budgets (bench/results/latest.md)"
	@echo "make format  apply ruff formatting and safe fixes"
	@echo "make soak    long fault/load/security run (~1 h), figures in tests/faults/last-soak.json"
	@echo "make dlib-blas  build dlib against OpenBLAS (5x faster face encoding; ~8 min)"
	@echo "make bundle  offline install bundle (dist/*.tar) for install.sh --bundle"
	@echo "make systemd-host-test[-blas|-bundle|-bare]  the installed path on a real systemd host"

setup: system-deps venv

# Installs only what is missing, and only as root; otherwise says what to install.
system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; \
	done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "missing Debian packages (run as root, or: sudo apt-get install $$missing)"; \
	fi

uv:
	@if [ ! -x "$(UV)" ]; then \
		echo "installing uv"; \
		python3 -m pip install --user --quiet uv 2>/dev/null \
		|| python3 -m pip install --user --quiet --break-system-packages uv; \
	fi

venv: uv
	@$(UV) sync --locked --quiet

demo: setup
	$(UV) run --locked kiosk --config config.yaml demo

run: setup
	$(UV) run --locked kiosk --config config.yaml run

# ruff: style; mypy: types, strict on kiosk/sync/hardware/models ([tool.mypy]); lint-imports:
# the import rules of docs/architecture.md ([tool.importlinter]).
lint: venv
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked mypy
	$(UV) run --locked lint-imports

format: venv
	$(UV) run --locked ruff check --fix .
	$(UV) run --locked ruff format .

# pytest exits 5 when it collected no tests: that must fail, not pass silently.
# The tests marked pcsc share the machine's one pcscd and the vpcd ports: they run on their own
# after the parallel part (xdist's groups were seen splitting them over both workers, which then
# started two pcscd daemons that fought over the same readers). --durations: the CI log names
# the slowest tests, so the suite's time can be watched.
pytest: setup
	@set +e; $(UV) run --locked pytest $(PYTEST_XDIST) -m "not pcsc" --durations=15 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; \
	$(UV) run --locked pytest -m pcsc $(PYTEST_ARGS); rc2=$$?; \
	if [ $$rc2 -eq 5 ]; then echo "pytest collected no pcsc tests: failing" >&2; exit 1; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$rc2

test: lint pytest

# The edit-test loop: no lint, none of the tests marked slow (subprocesses, uvicorn, PostgreSQL,
# pcscd, Chromium), in parallel. `make test` still runs everything.
test-fast: venv
	@set +e; $(UV) run --locked pytest $(PYTEST_XDIST) -m "not slow" -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

# Faults, load and security suites at full size (~1 h; see docs/faults.md): 1,000 SIGKILLs,
# 10x the fuzz examples, a longer compressed day. Figures land in tests/faults/last-soak.json.
soak: setup
	KIOSK_SOAK=1 KIOSK_FAULTS_REPORT=tests/faults/last-soak.json \
		$(UV) run --locked pytest tests/faults -p no:cacheprovider $(PYTEST_ARGS)

# Benchmarks against the budgets in DESIGN.md (several minutes); results in bench/results/.
bench: setup
	$(UV) run --locked python -m bench

# Production terminals: dlib compiled against OpenBLAS, cached as a wheel so it builds once.
# dlib's CMake alone only adds -mavx: its 8-lane integer SIMD (the HOG detector's orientation
# binning) then runs lane by lane and detection is 2x slower than dlib-bin's (docs/face.md).
# On an AVX2 host we build for x86-64-v3 (AVX2+FMA); the wheel then needs AVX2 to import.
# One folder per flags set, so a wheel built with other flags is never reused.
DLIB_VERSION := 20.0.1
WHEEL_CACHE := $(HOME)/.cache/haolinju-kiosk/wheels
# x86-64-v3 only where /proc/cpuinfo shows all of it (AVX2, FMA, BMI2...): systemd/dlib-wheel.sh.
DLIB_ARCH := $(shell . $(CURDIR)/systemd/dlib-wheel.sh && dlib_blas_arch /proc/cpuinfo)
DLIB_WHEELS := $(WHEEL_CACHE)/blas-$(DLIB_ARCH)-nogui
DLIB_CXXFLAGS := $(if $(filter x86-64-v3,$(DLIB_ARCH)),-march=x86-64-v3)
dlib-blas: venv
	@if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev cmake >/dev/null; fi
	@mkdir -p $(DLIB_WHEELS)
	@# CXXFLAGS seeds CMake's CMAKE_CXX_FLAGS; DLIB_* variables reach CMake through dlib's
	@# setup.py (no GUI: a terminal never opens dlib windows, and no libX11). --no-cache-dir:
	@# pip's wheel cache does not key on flags.
	@if ! ls $(DLIB_WHEELS)/dlib-$(DLIB_VERSION)-*.whl >/dev/null 2>&1; then \
		echo "building dlib $(DLIB_VERSION) against OpenBLAS, $(DLIB_ARCH) (several minutes)"; \
		CXXFLAGS="$(DLIB_CXXFLAGS)" DLIB_NO_GUI_SUPPORT=ON $(UV) run --no-sync --with pip \
			python -m pip wheel --no-cache-dir --no-deps --no-build-isolation \
			-w $(DLIB_WHEELS) dlib==$(DLIB_VERSION); \
	fi
	$(UV) pip uninstall --quiet dlib-bin || true
	@# --no-config: the project's override that drops the `dlib` sdist must not drop this wheel.
	$(UV) pip install --no-config --python .venv/bin/python --no-deps $(DLIB_WHEELS)/dlib-$(DLIB_VERSION)-*.whl
	$(UV) run --no-sync python -c "import dlib; print('dlib', dlib.__version__, 'BLAS:', dlib.DLIB_USE_BLAS)"

# The offline install bundle for a USB stick (see docs/install.md): the release, every locked
# wheel (+ the OpenBLAS dlib wheel from dlib-blas if built), uv, the .deb closure. Needs network.
bundle: venv
	systemd/make-bundle.sh

# The installed path on a real systemd host (root; see docs/install.md). systemd-host-test is
# part of `make test` (install.sh --no-blas); those below take longer and run on demand:
#   -blas    install.sh with the OpenBLAS dlib (uses the wheel from dlib-blas, else builds it)
#   -bundle  make bundle, then install.sh --bundle on a host with no network at all
#   -bare    the same onto a bare Debian 12 made by debootstrap (not this machine's root)
systemd-host-test: venv
	$(UV) run --locked pytest -p no:cacheprovider tests/systemd $(PYTEST_ARGS)

systemd-host-test-blas: venv
	KIOSK_SYSTEMD_BLAS=1 $(UV) run --locked pytest -p no:cacheprovider \
		tests/systemd/test_installed.py $(PYTEST_ARGS)

systemd-host-test-bundle: bundle
	KIOSK_BUNDLE=$$(ls -t dist/haolinju-kiosk-*.tar | head -n 1) $(UV) run --locked pytest \
		-p no:cacheprovider tests/systemd/test_bundle.py $(PYTEST_ARGS)

# The same install onto a bare Debian 12 (debootstrap minbase + systemd, + iproute2 and curl for
# the test's checks) as the host's lower layer instead of this machine's root. The tree is made
# once from the Debian mirror and cached outside the repository; rm -rf it to start afresh.
BARE_DEBIAN := $(HOME)/.cache/haolinju-kiosk/debootstrap-bookworm
$(BARE_DEBIAN):
	command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
	rm -rf $@.new
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2,curl \
		bookworm $@.new http://deb.debian.org/debian
	mv $@.new $@

systemd-host-test-bare: bundle $(BARE_DEBIAN)
	KIOSK_HOST_LOWER=$(BARE_DEBIAN) KIOSK_BUNDLE=$$(ls -t dist/haolinju-kiosk-*.tar | head -n 1) \
		$(UV) run --locked pytest -p no:cacheprovider \
		tests/systemd/test_bundle.py::test_bundle_installs_with_no_network $(PYTEST_ARGS)

# Start -> READY, RSS and idle CPU (camera on a video) of the installed service (~3 min).
systemd-host-measure: venv
	$(UV) run --locked python -m tests.systemd.measure_installed

clean:
	rm -rf .venv .pytest_cache .ruff_cache
