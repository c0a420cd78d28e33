#!/usr/bin/env bash
# Install the database servers that the test suite needs, when they are missing.
#
# The tests start their own private PostgreSQL and MariaDB (tests/support/dbservers.py)
# from the server binaries, so all this script does is put those binaries on the
# machine: `make test` and `.ci/run` run it first. It never configures or starts a
# server, and it stops any server that the package install itself started: a system
# server would hold its port and memory for nothing.
#
# The suite needs root (the run_as, work-dir, cgroup and container tests), and a test
# skipped for want of root counts as a failure: as any other user, the script stops at
# once with one line saying so.
#
# Knobs, for tests/test_install_test_deps.py (defaults in brackets):
#   OS_RELEASE        the os-release file that names the distribution [/etc/os-release]
#   TEST_SERVER_PATH  where to look for the server binaries, colon-separated
#                     [the folders tests/support/dbservers.py looks in, then $PATH]
#   POLICY_RC_D       Debian's hook that tells packages not to start services
#                     [/usr/sbin/policy-rc.d]
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "The tests need root (run_as, work dirs, cgroups, containers): run sudo make test" >&2
    exit 1
fi

os_release=${OS_RELEASE:-/etc/os-release}
pg_dirs=$(printf '%s:' /usr/lib/postgresql/*/bin)
search_path=${TEST_SERVER_PATH-"/usr/local/bin:${pg_dirs}/usr/sbin:/usr/libexec:${PATH}"}
policy_rc_d=${POLICY_RC_D:-/usr/sbin/policy-rc.d}

# found NAME...: every NAME is an executable file in a folder of $search_path.
found() {
    local name dir ok dirs
    for name in "$@"; do
        ok=no
        IFS=: read -r -a dirs <<<"$search_path"
        for dir in "${dirs[@]}"; do
            if [ -n "$dir" ] && [ -x "$dir/$name" ]; then ok=yes; break; fi
        done
        [ "$ok" = yes ] || return 1
    done
}

# The distribution's id and the ids it is like, lower-case, space-separated.
distribution() {
    # shellcheck disable=SC1090  # the file named by $OS_RELEASE
    (. "$os_release" && echo "${ID:-} ${ID_LIKE:-}" | tr '[:upper:]' '[:lower:]')
}

# Server processes (postgres, mariadbd, mysqld) running now: "pid ppid comm" lines.
servers() {
    ps -eo pid=,ppid=,comm= | awk '$3 == "postgres" || $3 == "mariadbd" || $3 == "mysqld"'
}

# Stop the servers that appeared since $1 (a servers() listing) and were started as
# daemons (their parent is init or mysqld_safe), not the private ones a test run
# started under its own process: only the tree's top process, which stops the rest.
stop_new_servers() {
    local before=$1 pid ppid comm parent
    while read -r pid ppid comm; do
        [ -n "$pid" ] || continue
        if grep -qE "^ *$pid " <<<"$before"; then continue; fi
        parent=$(ps -o comm= -p "$ppid" 2>/dev/null || true)
        if [ "$ppid" != 1 ] && [ "$parent" != mysqld_safe ]; then continue; fi
        echo "stopping the $comm ($pid) that the package install started"
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done <<<"$(servers)"
}

# install_apt PACKAGE...: Debian's policy hook keeps the packages from starting
# their services at all (101: action forbidden); the hook is removed afterwards.
install_apt() {
    local made_hook=no
    if [ ! -e "$policy_rc_d" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy_rc_d"
        chmod 755 "$policy_rc_d"
        made_hook=yes
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
    if [ "$made_hook" = yes ]; then rm -f "$policy_rc_d"; fi
}

need_postgres=no need_mariadb=no
found postgres initdb || need_postgres=yes
found mariadbd mariadb-install-db || need_mariadb=yes
# Tools the tests run, found on PATH: jq (run --local's JSON lines piped through
# it, as a user would) and systemd-analyze (the unit's verify and exposure). Each
# distribution names their packages alike.
tools=()
command -v jq >/dev/null 2>&1 || tools+=(jq)
command -v systemd-analyze >/dev/null 2>&1 || tools+=(systemd)
if [ $need_postgres = no ] && [ $need_mariadb = no ] && [ ${#tools[@]} -eq 0 ]; then
    exit 0
fi

ids=$(distribution)
case " $ids " in
    *" debian "* | *" ubuntu "*)
        installer=apt postgres_package=postgresql mariadb_package=mariadb-server ;;
    *" amzn "*)
        installer=dnf postgres_package=postgresql15-server mariadb_package=mariadb105-server ;;
    *" rhel "* | *" fedora "* | *" centos "*)
        installer=dnf postgres_package=postgresql-server mariadb_package=mariadb-server ;;
    *)
        echo "install-test-deps: unknown distribution ($ids in $os_release):" \
            "install the PostgreSQL and MariaDB servers by hand" >&2
        exit 1 ;;
esac
packages=()
if [ $need_postgres = yes ]; then packages+=("$postgres_package"); fi
if [ $need_mariadb = yes ]; then packages+=("$mariadb_package"); fi
packages+=(${tools[@]+"${tools[@]}"})

echo "install-test-deps: installing ${packages[*]}"
before=$(servers)
if [ "$installer" = apt ]; then
    install_apt "${packages[@]}"
else
    dnf install -y "${packages[@]}"
fi
stop_new_servers "$before"
