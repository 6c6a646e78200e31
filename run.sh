#!/usr/bin/env bash
# saraikit's two commands:
#   ./run.sh workbook [options]   the main job: every notebook on the default stack -> outputs/<target>/ (HTML report);
#                                 with --cluster ADDRESS [--targets all|A,B] on the Dask workers of each target
#   ./run.sh test [pytest args]   the whole test suite (unit + integration on the real default models)
# Both install what is missing first (Debian packages, the virtual environment and its Python
# packages, the default models) and are safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

# Debian packages: speech data, the espeak-ng baseline voice, build tools for llama-cpp-python,
# and Chromium for the browser tests of the HTML reports.
DEBIAN_PACKAGES=(espeak-ng asterisk-core-sounds-es-wav asterisk-core-sounds-es pocketsphinx-testdata
                 build-essential cmake git python3-venv chromium chromium-driver)

log() { printf '[saraikit] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_debian_packages() {
  local missing=()
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

find_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
      command -v "$candidate"; return 0
    fi
  done
  log "Python 3.11 is required (found: $(python3 --version 2>&1 || echo none))"; exit 1
}

# llama.cpp is compiled for this CPU's vector extensions, but never with its AMX kernels: on Xeons with
# AMX they crash (SIGSEGV in ggml_backend_amx_mul_mat on Gemma 3). -march=native would switch AMX on,
# so the extensions are listed one by one from /proc/cpuinfo instead.
llama_cmake_args() {
  [ "$(uname -m)" = "x86_64" ] || return 0
  local args="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" flag option
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 \
              avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    flag=${pair%%:*}; option=${pair##*:}
    if grep -qw "$flag" /proc/cpuinfo; then args+=" -DGGML_$option=ON"; else args+=" -DGGML_$option=OFF"; fi
  done
  echo "$args"
}

ensure_venv() {
  if [ ! -x "$PY" ]; then
    log "creating the virtual environment in .venv"
    "$(find_python)" -m venv "$VENV"
  fi
  # llama-cpp-python is rebuilt only when its version spec or this CPU's build flags change; the other
  # packages are reinstalled only when pyproject.toml changes.
  local llama_spec cmake_args llama_want llama_stamp="$VENV/.saraikit-llama-build"
  llama_spec=$(grep -o '"llama-cpp-python[^"]*"' pyproject.toml | tr -d '"')
  cmake_args=$(llama_cmake_args)
  llama_want="$llama_spec $cmake_args"
  if [ ! -f "$llama_stamp" ] || [ "$(cat "$llama_stamp")" != "$llama_want" ]; then
    log "building llama-cpp-python for this CPU (~5 minutes): $cmake_args"
    "$PY" -m pip install -q --upgrade pip wheel setuptools
    # --no-cache-dir: a wheel cached from another build of llama.cpp (other flags) must not be reused.
    CMAKE_ARGS="$cmake_args" "$PY" -m pip install -q --no-cache-dir --force-reinstall --no-deps "$llama_spec"
    echo "$llama_want" > "$llama_stamp"
  fi
  local stamp="$VENV/.saraikit-installed" want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing Python packages"
    "$PY" -m pip install -q -e ".[test]"
    echo "$want" > "$stamp"
  fi
}

provision_models() {
  "$VENV/bin/saraikit" models provision
}

main() {
  local command=${1:-}
  shift || true
  case "$command" in
    workbook)
      ensure_debian_packages; ensure_venv; provision_models
      exec "$VENV/bin/saraikit" workbook "$@" ;;
    test)
      ensure_debian_packages; ensure_venv; provision_models
      exec "$PY" -m pytest "$@" ;;
    setup)
      ensure_debian_packages; ensure_venv; provision_models ;;
    *)
      echo "usage: ./run.sh workbook [--target NAME] [--quick] [--only NOTEBOOK ...] [--cluster ADDRESS [--targets all|A,B]]" >&2
      echo "       ./run.sh test [pytest args]" >&2
      echo "       ./run.sh setup" >&2
      exit 2 ;;
  esac
}

main "$@"
