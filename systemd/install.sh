#!/usr/bin/env bash
# Install or upgrade Haolinju Kiosk on a Debian 12 terminal. Idempotent: run it again after
# copying a new release to upgrade (the database is backed up and migrated by the daemon).
#
#   sudo systemd/install.sh [--no-blas] [--no-ui]
#
# Nothing is enabled until `kiosk validate-config` accepts /etc/haolinju-kiosk/config.yaml.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/haolinju-kiosk
ETC=/etc/haolinju-kiosk
BLAS=1
UI=1
for arg in "$@"; do
  case "$arg" in
    --no-blas) BLAS=0 ;;
    --no-ui) UI=0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }

step() { printf '\n==> %s\n' "$*"; }

step "Debian packages"
make -C "$SRC" --no-print-directory system-deps
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cage polkitd >/dev/null

step "users and groups"
getent group kiosk >/dev/null || groupadd --system kiosk
id kiosk >/dev/null 2>&1 || useradd --system --gid kiosk --home-dir /nonexistent \
  --shell /usr/sbin/nologin --comment "Haolinju Kiosk daemon" kiosk
usermod -a -G video,input,dialout kiosk
if [ "$UI" = 1 ]; then
  id kiosk-ui >/dev/null 2>&1 || useradd --system --user-group --home-dir /nonexistent \
    --shell /usr/sbin/nologin --comment "Haolinju Kiosk touchscreen" kiosk-ui
  usermod -a -G video,input,render kiosk-ui 2>/dev/null || usermod -a -G video,input kiosk-ui
fi

step "application in $PREFIX"
mkdir -p "$PREFIX"
# Copy the release (not the caller's venv or data); the locked environment is built in place.
tar -C "$SRC" --exclude=.venv --exclude=data --exclude=.git -cf - . | tar -C "$PREFIX" -xf -
export UV_PYTHON_PREFERENCE=only-system
make -C "$PREFIX" --no-print-directory venv UV="$(command -v uv || echo /root/.local/bin/uv)"
if [ "$BLAS" = 1 ]; then
  make -C "$PREFIX" --no-print-directory dlib-blas
fi
chown -R root:root "$PREFIX"
chmod -R go-w "$PREFIX"

step "configuration in $ETC"
install -d -m 0755 "$ETC"
install -d -m 0700 "$ETC/credentials"
[ -f "$ETC/config.yaml" ] || install -m 0644 "$SRC/config.yaml" "$ETC/config.yaml"
for cred in device-token device-key face-key; do
  # Empty until `kiosk provision` fills them; LoadCredential= needs the files to exist.
  [ -f "$ETC/credentials/$cred" ] || install -m 0600 /dev/null "$ETC/credentials/$cred"
done
if [ ! -s "$ETC/credentials/face-key" ]; then
  head -c 32 /dev/urandom | base64 > "$ETC/credentials/face-key"
fi

step "validating $ETC/config.yaml"
"$PREFIX/.venv/bin/kiosk" validate-config "$ETC/config.yaml"

step "systemd units and polkit rule"
install -m 0644 "$SRC"/systemd/kiosk.service "$SRC"/systemd/kiosk-maintenance.service \
  "$SRC"/systemd/kiosk-maintenance.timer /etc/systemd/system/
[ "$UI" = 1 ] && install -m 0644 "$SRC/systemd/kiosk-ui.service" /etc/systemd/system/
install -D -m 0644 "$SRC/systemd/60-haolinju-kiosk-pcscd.rules" \
  /etc/polkit-1/rules.d/60-haolinju-kiosk-pcscd.rules
systemctl daemon-reload
systemctl enable --now pcscd.socket kiosk.service kiosk-maintenance.timer
[ "$UI" = 1 ] && systemctl enable --now kiosk-ui.service
# An upgrade replaces the code under a running daemon: restart it onto the new version.
systemctl restart kiosk.service

step "done"
systemctl --no-pager --lines=0 status kiosk.service || true
echo "Next: sudo -u kiosk $PREFIX/.venv/bin/kiosk doctor   (and kiosk provision, see README)"
