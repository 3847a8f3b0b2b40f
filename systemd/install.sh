#!/usr/bin/env bash
# Install or upgrade Haolinju Kiosk on a Debian 12 terminal. Idempotent: run it again from a
# newer release to upgrade (the daemon backs the database up and migrates it at start).
#
#   sudo systemd/install.sh [--no-blas] [--no-ui] [--bundle FILE]
#
#   --no-blas      keep the prebuilt dlib wheel (no OpenBLAS build; CI uses this to save time)
#   --no-ui        no touchscreen unit (headless terminal, or a technician's test box)
#   --bundle FILE  install from an offline bundle made by `make bundle`: no network at all
#
# Nothing is enabled until `kiosk validate-config` accepts /etc/haolinju-kiosk/config.yaml.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/haolinju-kiosk
ETC=/etc/haolinju-kiosk
# The interpreter the venv is built on. It must be the system's: uv would otherwise pick (or
# download) a Python under root's home, which the kiosk user cannot read (status 203/EXEC).
PYTHON=/usr/bin/python3.11
# What a terminal needs at run time (the Makefile's APT_PACKAGES adds the test/dev tools):
#   pcscd                          PC/SC card readers (pcscd.socket, polkit rule below)
#   chromium fonts-noto-cjk cage   the touchscreen (kiosk-ui.service)
#   xwayland                       cage refuses to start without the Xwayland binary
#   espeak-ng alsa-utils           spoken prompts: espeak-ng renders, aplay plays
#   sqlite3                        for technicians inspecting the database
#   polkitd                        lets the kiosk user reach pcscd
#   python3.11                     the venv's interpreter ($PYTHON): not in a minimal Debian 12
#                                  (the bare-Debian bundle test stopped here without it)
RUNTIME_PACKAGES="pcscd chromium fonts-noto-cjk cage xwayland espeak-ng alsa-utils sqlite3 polkitd python3.11"
BLAS=1
UI=1
BUNDLE=
while [ $# -gt 0 ]; do
  case "$1" in
    --no-blas) BLAS=0 ;;
    --no-ui) UI=0 ;;
    --bundle) BUNDLE=${2:?--bundle needs a file}; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }

step() { printf '\n==> %s\n' "$*"; }

if [ -n "$BUNDLE" ]; then
  step "unpacking bundle $BUNDLE"
  [ -f "$BUNDLE" ] || { echo "no such bundle: $BUNDLE" >&2; exit 1; }
  UNPACK=$(mktemp -d /var/tmp/haolinju-kiosk-bundle.XXXXXX)
  trap 'rm -rf "$UNPACK"' EXIT
  tar -C "$UNPACK" -xf "$BUNDLE"
  SRC=$UNPACK/haolinju-kiosk
  WHEELS=$UNPACK/wheelhouse
  UV=$UNPACK/bin/uv
  if [ ! -x "$UV" ] || [ ! -d "$WHEELS" ] || [ ! -f "$UNPACK/requirements.txt" ]; then
    echo "$BUNDLE is not a kiosk bundle (make bundle)" >&2; exit 1
  fi
else
  UV=$(command -v uv || echo /root/.local/bin/uv)
  [ -x "$UV" ] || { echo "uv is not installed (make uv, or use --bundle)" >&2; exit 1; }
fi

# Which OpenBLAS dlib this CPU can run (x86-64-v3 wheels need AVX2/FMA): systemd/dlib-wheel.sh
# of the release being installed (this script's own copy for a bundle made before it existed).
dlib_lib=$SRC/systemd/dlib-wheel.sh
[ -f "$dlib_lib" ] || dlib_lib=$(dirname "$0")/dlib-wheel.sh
# shellcheck source-path=SCRIPTDIR source=dlib-wheel.sh
. "$dlib_lib"
dlib_wheel=""
if [ -n "$BUNDLE" ] && [ "$BLAS" = 1 ]; then
  dlib_wheel=$(bundle_dlib_wheel "$WHEELS")
fi

step "Debian packages"
if [ -n "$BUNDLE" ]; then
  # The bundle's debs/ is a flat apt repository (Packages made by make-bundle.sh) holding the
  # .deb closure of RUNTIME_PACKAGES: apt resolves against it and what is installed, with its
  # own lists and sources so the system's are untouched (a village has no mirror).
  mkdir -p "$UNPACK/apt/lists/partial" "$UNPACK/apt/sources.list.d"
  echo "deb [trusted=yes] file:$UNPACK/debs ./" > "$UNPACK/apt/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$UNPACK/apt/sources.list"
    -o "Dir::Etc::SourceParts=$UNPACK/apt/sources.list.d" -o "Dir::State::Lists=$UNPACK/apt/lists"
    -o APT::Sandbox::User=root -o APT::Get::List-Cleanup=0)
  apt-get "${apt_opts[@]}" update -qq
  extra=""
  if [ -n "$dlib_wheel" ]; then extra=libopenblas0; fi
  # shellcheck disable=SC2086  # word lists on purpose
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends \
    $RUNTIME_PACKAGES $extra >/dev/null
else
  # shellcheck disable=SC2086  # a word list on purpose
  missing=$(for p in $RUNTIME_PACKAGES; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done)
  if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi
[ -x "$PYTHON" ] || { echo "$PYTHON is missing (apt install python3.11)" >&2; exit 1; }

step "users and groups"
getent group kiosk >/dev/null || groupadd --system kiosk
id kiosk >/dev/null 2>&1 || useradd --system --gid kiosk --home-dir /nonexistent \
  --shell /usr/sbin/nologin --comment "Haolinju Kiosk daemon" kiosk
# audio: aplay opens /dev/snd/* (kiosk.service allows the sound devices to this group).
# `input` comes with udev's package, not base-passwd: a minimal Debian 12 lacks it.
for group in video input dialout audio; do
  getent group "$group" >/dev/null || groupadd --system "$group"
done
usermod -a -G video,input,dialout,audio kiosk
if [ "$UI" = 1 ]; then
  id kiosk-ui >/dev/null 2>&1 || useradd --system --user-group --home-dir /nonexistent \
    --shell /usr/sbin/nologin --comment "Haolinju Kiosk touchscreen" kiosk-ui
  usermod -a -G video,input,render kiosk-ui 2>/dev/null || usermod -a -G video,input kiosk-ui
fi

step "application in $PREFIX"
NEW=$PREFIX.new
rm -rf "$NEW"
mkdir -p "$NEW"
# Copy the release (not the caller's venv or data); the environment is built beside the running
# one and swapped in, so an upgrade that fails half-way leaves the old release running.
tar -C "$SRC" --exclude=.venv --exclude=data --exclude=.git --exclude=dist \
  --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache --exclude=.mypy_cache \
  -cf - . | tar -C "$NEW" -xf -
export UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_PYTHON=$PYTHON
if [ -n "$BUNDLE" ]; then
  export UV_OFFLINE=1 UV_NO_CACHE=1
  "$UV" venv --quiet --python "$PYTHON" "$NEW/.venv"
  # --no-deps: requirements.txt is the whole locked closure (uv export), and resolving again
  # would bring back face-recognition's `dlib` sdist that the project overrides away.
  "$UV" pip install --quiet --python "$NEW/.venv/bin/python" --no-index --find-links "$WHEELS" \
    --no-deps -r "$UNPACK/requirements.txt"
  "$UV" pip install --quiet --python "$NEW/.venv/bin/python" --no-index --no-deps \
    "$WHEELS"/haolinju_kiosk-*.whl
  if [ -n "$dlib_wheel" ]; then
    echo "dlib: the bundle's OpenBLAS build $(basename "$(dirname "$dlib_wheel")")"
    "$UV" pip uninstall --quiet --python "$NEW/.venv/bin/python" dlib-bin || true
    "$UV" pip install --quiet --python "$NEW/.venv/bin/python" --no-index --no-deps "$dlib_wheel"
  else
    echo "dlib: dlib-bin from the wheelhouse"
  fi
else
  # --no-editable: the code lives in the venv, so the tree can move to $PREFIX below.
  (cd "$NEW" && "$UV" sync --quiet --locked --no-dev --no-editable --python "$PYTHON")
  if [ "$BLAS" = 1 ]; then
    # dlib against OpenBLAS (5x faster encodings), built once per machine into the same cache
    # as `make dlib-blas`; not through make: its `venv` prerequisite would add the dev tools.
    dlib_version=$(sed -n 's/^DLIB_VERSION := //p' "$SRC/Makefile")
    # Same flags and folder as the Makefile's dlib-blas (why: there and docs/face.md).
    dlib_arch=$(dlib_blas_arch /proc/cpuinfo)
    dlib_cxxflags=""
    if [ "$dlib_arch" = x86-64-v3 ]; then dlib_cxxflags="-march=x86-64-v3"; fi
    wheel_cache=/root/.cache/haolinju-kiosk/wheels/blas-$dlib_arch-nogui
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev cmake >/dev/null
    if ! ls "$wheel_cache/dlib-$dlib_version"-*.whl >/dev/null 2>&1; then
      echo "building dlib $dlib_version against OpenBLAS, $dlib_arch (several minutes)"
      CXXFLAGS="$dlib_cxxflags" DLIB_NO_GUI_SUPPORT=ON "$PYTHON" -m pip wheel --quiet \
        --no-cache-dir --no-deps -w "$wheel_cache" "dlib==$dlib_version"
    fi
    "$UV" pip uninstall --quiet --python "$NEW/.venv/bin/python" dlib-bin || true
    # --no-config: the project's override that drops the `dlib` sdist must not drop this wheel.
    "$UV" pip install --quiet --no-config --python "$NEW/.venv/bin/python" --no-deps \
      "$wheel_cache/dlib-$dlib_version"-*.whl
  fi
fi
# The venv must run as the kiosk user: its interpreter is the system one, nothing under /root.
real_python=$(readlink -f "$NEW/.venv/bin/python")
case "$real_python" in
  /usr/bin/*) ;;
  *) echo "the venv's interpreter is $real_python, not $PYTHON: refusing" >&2; exit 1 ;;
esac
chown -R root:root "$NEW"
chmod -R go-w,a+rX "$NEW"
(cd / && runuser -u kiosk -- "$NEW/.venv/bin/python" -I -c "import kiosk, dlib, cv2") \
  || { echo "the kiosk user cannot run the new environment" >&2; exit 1; }

step "configuration in $ETC"
install -d -m 0755 "$ETC"
if [ ! -f "$ETC/config.yaml" ]; then
  install -m 0644 "$SRC/config.yaml" "$ETC/config.yaml"
fi
step "validating $ETC/config.yaml with the new release"
if ! "$NEW/.venv/bin/kiosk" validate-config "$ETC/config.yaml"; then
  rm -rf "$NEW"
  # Packages and system users added above stay (harmless, and the next run needs them).
  echo "refusing to install: fix $ETC/config.yaml (the installed release, its units and data" \
    "are untouched; nothing was enabled)" >&2
  exit 1
fi
install -d -m 0700 "$ETC/credentials"
for cred in device-token device-key face-key; do
  # Empty until `kiosk provision` fills them; LoadCredential= needs the files to exist.
  [ -f "$ETC/credentials/$cred" ] || install -m 0600 /dev/null "$ETC/credentials/$cred"
done
if [ ! -s "$ETC/credentials/face-key" ]; then
  head -c 32 /dev/urandom | base64 > "$ETC/credentials/face-key"
fi

step "swapping in the new release"
if [ -e "$PREFIX" ]; then
  rm -rf "$PREFIX.old"
  mv "$PREFIX" "$PREFIX.old"
fi
rm -rf "$PREFIX"
mv "$NEW" "$PREFIX"
# The venv's scripts name their interpreter by absolute path: point them at the final prefix.
grep -rlF "$NEW/" "$PREFIX/.venv/bin" | xargs -r sed -i "s#$NEW/#$PREFIX/#g"
rm -rf "$PREFIX.old"

step "systemd units and polkit rule"
install -m 0644 "$SRC"/systemd/kiosk.service "$SRC"/systemd/kiosk-maintenance.service \
  "$SRC"/systemd/kiosk-maintenance.timer /etc/systemd/system/
if [ "$UI" = 1 ]; then
  install -m 0644 "$SRC"/systemd/kiosk-ui.service "$SRC"/systemd/kiosk-screen.service \
    "$SRC"/systemd/kiosk-screen.timer /etc/systemd/system/
fi
install -D -m 0644 "$SRC/systemd/60-haolinju-kiosk-pcscd.rules" \
  /etc/polkit-1/rules.d/60-haolinju-kiosk-pcscd.rules
systemctl daemon-reload
systemctl enable --now pcscd.socket kiosk.service kiosk-maintenance.timer
if [ "$UI" = 1 ]; then systemctl enable --now kiosk-ui.service kiosk-screen.timer; fi
# An upgrade replaces the code under a running daemon: restart it onto the new version.
systemctl restart kiosk.service

step "done"
systemctl --no-pager --lines=0 status kiosk.service || true
echo "Next: sudo -u kiosk $PREFIX/.venv/bin/kiosk doctor   (and kiosk provision, see README)"
