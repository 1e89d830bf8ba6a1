#!/usr/bin/env bash
# Prepare a fresh machine for xnatfs: system packages (pyfuse3 has no wheels and builds against
# libfuse3), then a virtual environment in .venv with the package and its test tools.
# Usage: scripts/setup.sh [runtime|test]
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"

need=()
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
pkg-config --exists fuse3 2>/dev/null || need+=(libfuse3-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v cc >/dev/null 2>&1 || need+=(gcc)
if [ "$profile" = test ]; then
    # The end-to-end tests convert a series read through the mount, as users do.
    command -v dcm2niix >/dev/null 2>&1 || need+=(dcm2niix)
    command -v rsync >/dev/null 2>&1 || need+=(rsync)
    # getfattr: the extended attributes are tested with the tool users read them with.
    command -v getfattr >/dev/null 2>&1 || need+=(attr)
    command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
fi
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "xnatfs setup: missing system packages: ${need[*]}" >&2
        echo "install them with: sudo apt-get install ${need[*]}" >&2
        exit 1
    fi
    echo "xnatfs setup: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "xnatfs setup: xnatfs needs Python 3.11 or newer; $python is older (set PYTHON=python3.11)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
extra=""
[ "$profile" = test ] && extra="[test]"
stamp=".venv/.installed-$profile"
fresh() { [ -f "$1" ] && ! [ pyproject.toml -nt "$1" ]; }
# The test profile holds everything the runtime one does.
if [ "$profile" = runtime ] && fresh .venv/.installed-test; then
    exit 0
fi
if ! fresh "$stamp"; then
    if [ ! -f "$stamp" ]; then
        echo "xnatfs setup: first run: installing xnatfs and its Python packages into .venv" \
             "(pyfuse3 is compiled: a few minutes)" >&2
    else
        echo "xnatfs setup: pyproject.toml changed: updating .venv" >&2
    fi
    # pip's build chatter goes to a log; it is shown only when the install fails.
    log=.venv/install.log
    if ! { .venv/bin/python -m pip install -q --upgrade pip &&
           .venv/bin/python -m pip install -q -e ".$extra"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "xnatfs setup: pip install failed (log above)" >&2
        exit 1
    fi
    touch "$stamp"
fi
