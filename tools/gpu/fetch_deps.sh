#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before tools/gpu/check.sh: the GPU machine has no network
# and lacks some of the -dev packages the build needs, so this downloads Debian's packages
# into .gpu-deps/ (git-ignored through .git/info/exclude), which the device call carries
# (`carry: [".gpu-deps"]`) and check.sh unpacks into a private prefix there.
set -euo pipefail
cd "$(dirname "$0")/../.."
packages=(libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
          libutf8proc-dev libutf8proc2 libcpp-httplib-dev libcpp-httplib0.11
          libssl-dev libssl3 libbrotli-dev libbrotli1 zlib1g-dev)
mkdir -p .gpu-deps
(cd .gpu-deps && apt-get download "${packages[@]}" >/dev/null)
exclude=$(git rev-parse --git-dir)/info/exclude
grep -qx '/.gpu-deps/' "$exclude" 2>/dev/null || echo '/.gpu-deps/' >>"$exclude"
du -sh .gpu-deps
