#!/usr/bin/env bash
# Prepare a machine to build, test and demo the project: RabbitMQ (for the private test broker),
# uv, then the workspace's virtual environment (.venv at the repository root, dev tools included).
#
# Works on a fresh Debian 12 machine as root; idempotent and quiet when there is nothing to do.
# Run it directly, or source it from another script (tools/test.sh does): afterwards `uv` works
# even when pip put it somewhere off PATH.
set -euo pipefail

_bootstrap_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
export PATH="$HOME/.local/bin:/usr/local/bin:$PATH:/usr/sbin:/usr/local/sbin:/sbin"
_bootstrap_apt_updated=""

_bootstrap_apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: '$*' is missing and installing it needs root (apt-get install $*)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$_bootstrap_apt_updated" ]; then
        timeout 600 apt-get update -qq
        _bootstrap_apt_updated=1
    fi
    timeout 900 apt-get install -y -qq "$@" >/dev/null
}

# 1. RabbitMQ: the tests start their own private node; the package's system service is not used.
if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "bootstrap: installing rabbitmq-server"
    _bootstrap_apt_install rabbitmq-server
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        # the package starts a system-wide broker on 5672; the tests never use it
        systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
    fi
fi

# 2. uv
if ! command -v uv >/dev/null 2>&1; then
    echo "bootstrap: installing uv"
    if ! python3 -m pip --version >/dev/null 2>&1; then
        _bootstrap_apt_install python3-pip
    fi
    # Debian's own python3 is "externally managed" (PEP 668): fall back to --break-system-packages
    python3 -m pip install -q uv 2>/dev/null \
        || python3 -m pip install -q --break-system-packages uv
    hash -r
    if ! command -v uv >/dev/null 2>&1; then
        uv() { python3 -m uv "$@"; }
    fi
fi

# 3. the workspace: every package, plus the dev dependency group (uv's default)
(cd "$_bootstrap_root" && uv sync --all-packages --quiet)
