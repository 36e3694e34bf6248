#!/usr/bin/env bash
# Installs everything fourbit's build and tests need on Debian 12 (run as root). Idempotent:
# packages already present are not fetched again, and apt's lists are refreshed only when
# something is missing.
set -euo pipefail

packages=(
    build-essential cmake ninja-build pkg-config ccache git
    libgtest-dev libgmock-dev libbenchmark-dev
    nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
    libpcre2-dev libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
    python3 python3-venv
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
