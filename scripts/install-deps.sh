#!/usr/bin/env bash
# Installs the Debian 12 packages paradiff needs to build, test and benchmark, if missing.
# Usage: scripts/install-deps.sh [fuzz]   ("fuzz" adds clang and its fuzzer runtime)
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config make
  libdnnl-dev                    # oneDNN: GEMMs with prepacked weights
  libopenmpi-dev openmpi-bin     # the distributed runtime
  nlohmann-json3-dev             # safetensors headers, config.json
  libcli11-dev                   # the command line
  libpng-dev                     # images
  libsentencepiece-dev           # T5 tokenizer
  libicu-dev                     # CLIP tokenizer: Unicode classes, NFC, lowercasing
  libcpp-httplib-dev             # paradiff serve: the HTTP server
  libgtest-dev libgmock-dev      # tests
  libbenchmark-dev               # benchmarks
  python3-dev pybind11-dev       # the Python package's engine module
  python3-pytest python3-numpy python3-pil  # its tests
  chromium chromium-driver       # the server's web page, tested in a real browser
  iproute2                       # tests/hosts: simulated hosts (skipped without it)
)
if [[ "${1:-}" == "fuzz" ]]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
