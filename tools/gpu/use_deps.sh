# Sourced by the GPU machine's scripts (check.sh, ab.sh) from the repository root: the packages
# the bare GPU machine lacks, carried from the dev machine in .gpu-deps (tools/gpu/fetch_deps.sh),
# unpacked into a private prefix whose pkg-config files are pointed at it.
gpu_deps=/tmp/gpu-deps
if compgen -G ".gpu-deps/*.deb" >/dev/null; then
    for deb in .gpu-deps/*.deb; do dpkg -x "$deb" "$gpu_deps"; done
    sed -i "s|^prefix=/usr|prefix=$gpu_deps/usr|" "$gpu_deps"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc
    export PKG_CONFIG_PATH="$gpu_deps/usr/lib/x86_64-linux-gnu/pkgconfig:${PKG_CONFIG_PATH:-}"
    export LD_LIBRARY_PATH="$gpu_deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
    export OPENSSL_ROOT_DIR="$gpu_deps/usr"
fi
