#!/bin/sh
# Install dp-runner on a host, ending with the unit running:
#   - a venv in /opt/dp-runner holding dp-runner and its dependencies,
#   - /usr/local/bin/dp-runner linking to it,
#   - the dp-runner system user (no shell, no home of its own),
#   - /etc/dp-runner/config.toml from config.example.toml (never overwritten),
#   - /etc/systemd/system/dp-runner.service, enabled and started.
#
# Usage (from a checkout):  sudo systemd/install.sh [--root DIR] [--no-start]
#   --root DIR   install into DIR instead of / (a package build, a test); no user
#                is created and systemctl is not called
#   --no-start   install and enable, but do not start (edit the config first)
# Run it again to upgrade: the venv is rebuilt from the checkout, the config kept.
set -eu

root=""
start=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=${2:?--root needs a directory}; shift 2 ;;
        --no-start) start=no; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

src=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
prefix="$root/opt/dp-runner"

"$python" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
rm -rf "$prefix"
"$python" -m venv "$prefix"
"$prefix/bin/python" -m pip install --quiet --upgrade pip
"$prefix/bin/python" -m pip install --quiet "$src"

install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system"
ln -sfn /opt/dp-runner/bin/dp-runner "$root/usr/local/bin/dp-runner"
install -d -m 0755 "$root/etc/dp-runner"
if [ ! -e "$root/etc/dp-runner/config.toml" ]; then
    install -m 0644 "$src/config.example.toml" "$root/etc/dp-runner/config.toml"
fi
install -m 0644 "$src/systemd/dp-runner.service" "$root/etc/systemd/system/dp-runner.service"

if [ -n "$root" ]; then
    echo "installed into $root (no user created, systemctl not called)"
    exit 0
fi
if ! id dp-runner >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /var/lib/dp-runner \
        --shell /usr/sbin/nologin dp-runner
fi
systemctl daemon-reload
systemctl enable dp-runner.service
if [ "$start" = yes ]; then
    systemctl restart dp-runner.service
    systemctl --no-pager status dp-runner.service || true
else
    echo "enabled; edit /etc/dp-runner/config.toml, then: systemctl start dp-runner"
fi
