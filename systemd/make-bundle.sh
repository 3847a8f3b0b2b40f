#!/usr/bin/env bash
# Build the offline install bundle a technician carries on a USB stick (`make bundle`):
#
#   dist/haolinju-kiosk-<version>-<arch>.tar
#     haolinju-kiosk/     the release (what install.sh copies to /opt/haolinju-kiosk)
#     wheelhouse/         every locked wheel for the system Python (sdists built here), the
#                         project's own wheel, and the OpenBLAS dlib wheel when one was built
#                         (`make dlib-blas`, cached in ~/.cache/haolinju-kiosk/wheels/blas-*)
#     requirements.txt    the locked versions (no dev tools), installed with --no-index
#     bin/uv              the uv that installs them
#     debs/               the .deb closure of install.sh's RUNTIME_PACKAGES as a flat apt
#                         repository (Packages), + packages.txt
#     MANIFEST            what went in, sizes, where it was built
#
# Needs the network (PyPI, the Debian mirror) and must run on the target's Debian release and
# architecture (Debian 12, the terminals' CPU): wheels and .debs are for this machine's.
# Install: sudo haolinju-kiosk/systemd/install.sh --bundle FILE (from the unpacked tar), or
# from a checkout: sudo systemd/install.sh --bundle FILE.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
# The folder `make dlib-blas` builds into on this host (Makefile: DLIB_WHEELS, one per flags).
# shellcheck source-path=SCRIPTDIR source=dlib-wheel.sh
. "$SRC/systemd/dlib-wheel.sh"
WHEEL_CACHE=${WHEEL_CACHE:-$HOME/.cache/haolinju-kiosk/wheels/blas-$(dlib_blas_arch /proc/cpuinfo)-nogui}
# What the wheel was built for (blas-<target>-nogui): install.sh installs it only on a CPU that
# runs that target (wheelhouse/dlib-blas-<target>/, outside the flat find-links folder).
dlib_target=$(basename "$WHEEL_CACHE"); dlib_target=${dlib_target#blas-}; dlib_target=${dlib_target%-nogui}
PYTHON=/usr/bin/python3.11
UV=${UV:-$(command -v uv || echo "$HOME/.local/bin/uv")}
OUT_DIR=${OUT_DIR:-$SRC/dist}
WITH_DEBS=${WITH_DEBS:-1}

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$SRC/pyproject.toml" | head -n 1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d /var/tmp/haolinju-kiosk-bundle-build.XXXXXX)
trap 'rm -rf "$stage"' EXIT
step() { printf '==> %s\n' "$*"; }

step "release tree"
mkdir -p "$stage/haolinju-kiosk" "$stage/wheelhouse" "$stage/bin" "$stage/debs"
tar -C "$SRC" --exclude=.venv --exclude=data --exclude=.git --exclude=dist \
  --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache --exclude=.mypy_cache \
  --exclude=tests/systemd/artifacts -cf - . | tar -C "$stage/haolinju-kiosk" -xf -

step "wheels for $PYTHON"
(cd "$SRC" && "$UV" export --quiet --locked --no-dev --no-emit-project --format requirements-txt \
  -o "$stage/requirements.hashes.txt")
(cd "$SRC" && "$UV" export --quiet --locked --no-dev --no-emit-project --no-hashes \
  --format requirements-txt -o "$stage/requirements.txt")
# pip checks every download against the lock's hashes; sdists (evdev) are built into wheels
# here, so the terminal needs no compiler.
"$PYTHON" -m pip wheel --quiet --no-deps --require-hashes -r "$stage/requirements.hashes.txt" \
  -w "$stage/wheelhouse"
rm "$stage/requirements.hashes.txt"
(cd "$SRC" && "$UV" build --quiet --wheel --python "$PYTHON" -o "$stage/wheelhouse")
if ls "$WHEEL_CACHE"/dlib-*.whl >/dev/null 2>&1; then
  mkdir -p "$stage/wheelhouse/dlib-blas-$dlib_target"
  cp "$WHEEL_CACHE"/dlib-*.whl "$stage/wheelhouse/dlib-blas-$dlib_target/"
  echo "with the OpenBLAS dlib wheel for $dlib_target: $(basename "$WHEEL_CACHE"/dlib-*.whl)"
else
  echo "no OpenBLAS dlib wheel in $WHEEL_CACHE (make dlib-blas): the bundle installs dlib-bin"
fi
cp "$UV" "$stage/bin/uv"

if [ "$WITH_DEBS" = 1 ]; then
  step "Debian packages (closure of install.sh's RUNTIME_PACKAGES)"
  runtime=$(sed -n 's/^RUNTIME_PACKAGES="\(.*\)"/\1/p' "$SRC/systemd/install.sh")
  extra=""
  ls "$WHEEL_CACHE"/dlib-*.whl >/dev/null 2>&1 && extra="libopenblas0"
  # shellcheck disable=SC2086  # word lists on purpose
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances $runtime $extra python3.11 | grep '^[a-z0-9]' | sort -u \
    > "$stage/debs/packages.txt"
  # shellcheck disable=SC2046
  (cd "$stage/debs" && apt-get download -qq $(cat packages.txt) >/dev/null 2>&1)
  # A flat repository index, so install.sh lets apt resolve from these files alone.
  if command -v apt-ftparchive >/dev/null; then
    (cd "$stage/debs" && apt-ftparchive packages . > Packages)
  else
    (cd "$stage/debs" && dpkg-scanpackages --multiversion . /dev/null > Packages 2>/dev/null)
  fi
fi

step "archive"
{
  echo "haolinju-kiosk $version for Debian $(cut -d. -f1 /etc/debian_version) $arch"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "wheels: $(find "$stage/wheelhouse" -name '*.whl' | wc -l) ($(du -sh "$stage/wheelhouse" | cut -f1))"
  echo "dlib: $(find "$stage/wheelhouse" -name 'dlib-*.whl' -printf '%P\n' | head -n 1 | grep . || echo "dlib-bin only")"
  echo "debs: $(find "$stage/debs" -name '*.deb' | wc -l) ($(du -sh "$stage/debs" | cut -f1))"
} > "$stage/MANIFEST"
mkdir -p "$OUT_DIR"
out="$OUT_DIR/haolinju-kiosk-$version-$arch.tar"
# Plain tar: wheels and .debs are compressed already.
tar -C "$stage" -cf "$out" MANIFEST requirements.txt haolinju-kiosk wheelhouse bin debs
cat "$stage/MANIFEST"
echo "bundle: $out ($(du -h "$out" | cut -f1))"
