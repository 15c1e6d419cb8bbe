#!/usr/bin/env bash
# Installs the build dependencies (and gnuplot, which `tpusim plot` runs) when missing
# (Debian/Ubuntu), then configures and builds tpusim in ./build (Release). Extra arguments are
# passed to the CMake configure step.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make pkg-config libsystemc-dev nlohmann-json3-dev libcli11-dev libgtest-dev
          libonnx-dev libprotobuf-dev gnuplot-nox)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tpusim: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
