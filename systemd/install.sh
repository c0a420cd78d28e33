#!/bin/sh
# Install dp-runner on a host, ending with the unit running:
#   - a venv in /opt/dp-runner.venvs/<time>, with /opt/dp-runner a symlink to it,
#   - /usr/local/bin/dp-runner linking to /opt/dp-runner/bin/dp-runner,
#   - the dp-runner system user (no shell, no home of its own),
#   - /etc/dp-runner/config.toml from config.example.toml (never overwritten),
#   - /etc/dp-runner/environment, all comments (never overwritten),
#   - /etc/systemd/system/dp-runner.service, enabled and started.
#
# Usage (from a checkout):  sudo systemd/install.sh [options]
#   --wheels DIR   install from DIR (made by `make wheelhouse`), with no index
#   --prefix PATH  the venv's final path (default /opt/dp-runner)
#   --root DIR     stage the tree under DIR for a package build: it works once
#                  moved to /; no user is created and systemctl is not called
#   --no-start     install and enable, but do not start (edit the config first)
#   --rollback     point PREFIX back to the venv the last upgrade replaced
# Python: the first of python3.13, 3.12, 3.11, python3 that is 3.11 or newer
# (systemd/find-python), or PYTHON, written after sudo: sudo PYTHON=... install.sh
# Run it again to upgrade: the new venv is built beside the running one and checked
# (dp-runner --version) before the symlink moves; a failure leaves the running
# install as it was and exits non-zero. The versions come from constraints.txt.
set -eu

root=""
prefix=/opt/dp-runner
wheels=""
start=yes
action=install
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=${2:?--root needs a directory}; shift 2 ;;
        --prefix) prefix=${2:?--prefix needs a path}; shift 2 ;;
        --wheels) wheels=${2:?--wheels needs a directory}; shift 2 ;;
        --no-start) start=no; shift ;;
        --rollback) action=rollback; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$prefix" in
    /*) prefix=${prefix%/} ;;
    *) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;;
esac
if [ -n "$root" ]; then
    mkdir -p "$root"
    root=$(cd "$root" && pwd)
fi
if [ -n "$wheels" ]; then
    wheels=$(cd "$wheels" && pwd)
fi

src=$(cd "$(dirname "$0")/.." && pwd)
# The venvs live beside the link: PREFIX -> PREFIX.venvs/<name> (a relative link,
# so that the staged tree keeps working once it is moved).
link="$root$prefix"
venvs="$root$prefix.venvs"
base=$(basename "$prefix")

say() { echo "install.sh: $*" >&2; }

# A venv's scripts name its python by path. Built under --root, those paths (and
# pyvenv.cfg, and the paths compiled into .pyc files) are rewritten to the final ones.
relocate() {
    "$1/bin/python" - "$1" "$root" <<'EOF'
import pathlib, sys
venv, root = pathlib.Path(sys.argv[1]), sys.argv[2]
old, new = str(venv).encode(), str(venv)[len(root):].encode()
for path in [venv / "pyvenv.cfg", *(venv / "bin").iterdir()]:
    if path.is_file() and not path.is_symlink():
        data = path.read_bytes()
        if old in data and b"\0" not in data:
            path.write_bytes(data.replace(old, new))
EOF
    "$1/bin/python" -m compileall -q -f -s "$root" -p / "$1/lib" >/dev/null
}

install_venv() {
    python=$("$src/systemd/find-python")
    if ! "$python" -c 'import ensurepip' 2>/dev/null; then
        say "$python has no venv module; on Debian and Ubuntu: sudo apt-get install python3-venv"
        exit 1
    fi
    mkdir -p "$venvs"
    name=$(date -u +%Y%m%dT%H%M%SZ)
    [ ! -e "$venvs/$name" ] || name="$name-$$"
    new="$venvs/$name"
    # Whatever fails from here on removes the half-built venv and nothing else.
    trap 'rm -rf "$new"' EXIT
    trap 'exit 1' HUP INT TERM
    "$python" -m venv "$new"
    compile=--compile
    [ -z "$root" ] || compile=--no-compile
    if [ -n "$wheels" ]; then
        "$new/bin/python" -m pip install --quiet $compile --no-index \
            --find-links "$wheels" -c "$src/constraints.txt" dp-runner
    else
        "$new/bin/python" -m pip install --quiet $compile \
            -c "$src/constraints.txt" "$src"
    fi
    version=$("$new/bin/dp-runner" --version)
    [ -z "$root" ] || relocate "$new"
    switch_to "$name"
    say "$version in $new"
}

# Point PREFIX at NAME with one rename (atomic); remember what it pointed at.
switch_to() {
    before=""
    if [ -d "$link" ] && [ ! -L "$link" ]; then
        # A venv made by an earlier install.sh, in place: it becomes the previous one.
        mv "$link" "$venvs/before-venvs"
        before=before-venvs
    elif [ -L "$link" ]; then
        before=$(basename "$(readlink "$link")")
    fi
    ln -sfn "$base.venvs/$1" "$link.new"
    mv -T "$link.new" "$link"
    trap - EXIT  # NAME is the install now: nothing after this removes it
    if [ -n "$before" ] && [ "$before" != "$1" ]; then
        ln -sfn "$before" "$venvs/previous"
    fi
    for old in "$venvs"/*; do
        case "$(basename "$old")" in
            "$1"|previous|"$(basename "$(readlink "$venvs/previous" 2>/dev/null || echo -)")") ;;
            *) rm -rf "$old" ;;
        esac
    done
}

rollback() {
    if [ ! -L "$venvs/previous" ] || [ ! -d "$venvs/$(readlink "$venvs/previous")" ]; then
        say "no previous venv in $venvs to roll back to"
        exit 1
    fi
    previous=$(readlink "$venvs/previous")
    if [ -z "$root" ]; then
        "$venvs/$previous/bin/dp-runner" --version >/dev/null
    fi
    switch_to "$previous"
    say "$prefix now points to $prefix.venvs/$previous"
}

if [ "$action" = rollback ]; then
    rollback
    if [ -z "$root" ] && systemctl is-enabled --quiet dp-runner.service 2>/dev/null; then
        systemctl try-restart dp-runner.service
    fi
    exit 0
fi

install_venv

install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system"
ln -sfn "$prefix/bin/dp-runner" "$root/usr/local/bin/dp-runner"
install -d -m 0755 "$root/etc/dp-runner"
if [ ! -e "$root/etc/dp-runner/config.toml" ]; then
    install -m 0644 "$src/config.example.toml" "$root/etc/dp-runner/config.toml"
fi
if [ ! -e "$root/etc/dp-runner/environment" ]; then
    install -m 0600 "$src/systemd/environment" "$root/etc/dp-runner/environment"
fi
sed "s|/opt/dp-runner/|$prefix/|" "$src/systemd/dp-runner.service" \
    > "$root/etc/systemd/system/dp-runner.service"
chmod 0644 "$root/etc/systemd/system/dp-runner.service"

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
