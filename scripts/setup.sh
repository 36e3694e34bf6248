#!/usr/bin/env bash
# Installs everything fourbit's build and tests need on Debian 12 (run as root). Idempotent:
# packages already present are not fetched again, and apt's lists are refreshed only when
# something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    build-essential cmake ninja-build pkg-config ccache git
    libgtest-dev libgmock-dev libbenchmark-dev
    nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
    libpcre2-dev libutf8proc-dev libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
    xz-utils clang libclang-rt-14-dev
    python3 python3-venv python3-pip
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "setup: all packages present"
fi

# Python tools for tests and references (never torch): a pinned virtual environment under
# build/venv, made once and refreshed when tools/requirements.txt changes.
venv=${FOURBIT_VENV:-build/venv}
requirements=tools/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$venv/requirements.txt"; then
    echo "setup: python tools in $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi
