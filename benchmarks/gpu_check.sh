#!/usr/bin/env bash
# The GPU checks of cpc on a lent machine, in one go (about 3-5 minutes on an H200):
#   1. python -m benchmarks.gpu_check   CUDA smoke checks  -> $OUT/gpu_check/gpu_check.json
#   2. python -m benchmarks.run --device cuda              -> $OUT/results/<gpu>.json, .md
#
# Run from the repository root with $OUT set (the device tool sets it), carrying the
# wheels of the audio readers the package imports (.whl/gpu, built here with
#   pip download soundfile soxr cffi pycparser --python-version 3.12 --only-binary=:all: \
#       --platform manylinux_2_28_x86_64 --no-deps -d .whl/gpu
# ). torchaudio and torchvision are stood in for by stubs when absent: the checks use
# neither (the log-mel front-end is then skipped and says so). The second step gets what
# is left of BENCH_LIMIT_S seconds (default 330) and is cut there, keeping its partial
# log; afterwards copy $OUT/results/<gpu>.json and .md into benchmarks/results/ and run
# `python -m benchmarks.machines` to add the GPU column to RESULTS.md.
set -u
OUT=${OUT:-/tmp/cpc-gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
DEPS=/tmp/cpc-gpu-deps
STUBS=/tmp/cpc-gpu-stubs
start=$(date +%s)

if ! $PY -c "import soundfile, soxr" 2>/dev/null && [ -d .whl/gpu ]; then
  $PY -m pip install --quiet --no-index --find-links .whl/gpu --target "$DEPS" \
    soundfile soxr >"$OUT/pip.log" 2>&1 || echo "pip install of the carried wheels failed: see pip.log"
fi
export PYTHONPATH="$PWD:$DEPS${PYTHONPATH:+:$PYTHONPATH}"

stubbed=""
stub() {  # stub PACKAGE MODULE...: modules whose every attribute is a placeholder class
  local package=$1; shift
  $PY -c "import $package" 2>/dev/null && return
  stubbed="$stubbed $package"
  for module in "$@"; do
    local path="$STUBS/${module//.//}"
    mkdir -p "$path"
    cat >"$path/__init__.py" <<'EOF'
"""A stand-in for a package this GPU machine lacks (benchmarks/gpu_check.sh)."""


class _Missing:
    def __init__(self, *args, **kwargs):
        raise ModuleNotFoundError(f"{__name__} is a stub on this machine")

    def __init_subclass__(cls, **kwargs):
        pass


def __getattr__(name):
    return _Missing
EOF
  done
}
stub torchaudio torchaudio torchaudio.functional torchaudio.transforms
stub torchvision torchvision torchvision.datasets torchvision.transforms \
  torchvision.transforms.v2 torchvision.transforms.v2.functional
if [ -n "$stubbed" ]; then
  export PYTHONPATH="$PYTHONPATH:$STUBS"
  export CPC_GPU_CHECK_STUBS="$stubbed"
  echo "stubbed:$stubbed"
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/nvidia-smi.csv" 2>&1
$PY -m benchmarks.gpu_check --out "$OUT/gpu_check" 2>&1 | tee "$OUT/gpu_check.log"
check=${PIPESTATUS[0]}

left=$(( ${BENCH_LIMIT_S:-330} - ($(date +%s) - start) ))
if [ "$left" -gt 30 ]; then
  timeout "$left" $PY -m benchmarks.run --device cuda --out "$OUT/results" \
    2>&1 | tee "$OUT/benchmark.log"
  bench=${PIPESTATUS[0]}
else
  echo "no time left for the benchmark" | tee "$OUT/benchmark.log"
  bench=124
fi
echo "gpu_check exit $check, benchmark exit $bench, $(( $(date +%s) - start )) s in all"
exit $(( check != 0 || bench != 0 ))
