#!/usr/bin/env bash
# The CUDA checks as one prepared command, for a session that is lent a GPU machine through the
# `device` tool (it starts bare, cannot reach a package index, and holds its own Python with
# torch and transformers, but not bitsandbytes or sqlite-utils).
#
#   here:   scripts/gpu_check.sh prepare MODEL_DIR   # wheels and a trained captioner into .gpu/
#   there:  run(command="bash scripts/gpu_check.sh", carry=[".gpu"], timeout_s=540)
#
# On the device it installs the carried wheels beside its Python, runs the quantization tests
# (their CUDA cases run there) and scripts/bench_quantization.py on the GPU, and writes
# everything to $OUT. DEVICE=cpu OUT=/tmp/out bash scripts/gpu_check.sh tries the same steps on
# a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
GPU=.gpu
WHEELS=(bitsandbytes==0.50.2 sqlite-utils==4.2.1 sqlite-fts4==1.0.3 click-default-group==1.2.4)

if [[ "${1:-}" == prepare ]]; then
    model=${2:?usage: scripts/gpu_check.sh prepare MODEL_DIR (a trained captioner version)}
    rm -rf "$GPU" && mkdir -p "$GPU/wheels" || exit 1
    # The device's Python is 3.12 on x86_64; bitsandbytes ships its CUDA libraries in the wheel.
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_24_x86_64 --dest "$GPU/wheels" "${WHEELS[@]}" || exit 1
    cp -r "$model" "$GPU/captioner" || exit 1
    du -sh "$GPU"
    exit 0
fi

DEVICE=${DEVICE:-cuda}
OUT=${OUT:?OUT must name the folder for the results}
PY=${PYTHON:-python3}
[[ -d "$GPU/wheels" ]] || { echo "no $GPU/wheels: run 'scripts/gpu_check.sh prepare' first" >&2; exit 2; }
"$PY" -m pip install -q --no-index --no-deps --target "$GPU/site" "$GPU"/wheels/*.whl || exit 1
export PYTHONPATH="$PWD:$PWD/$GPU/site"
{
    nvidia-smi 2>&1 | head -15
    "$PY" -c 'import sys, torch, transformers, bitsandbytes as b
print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__,
      "bitsandbytes", b.__version__, "cuda", torch.cuda.is_available())'
} >"$OUT/machine.txt" 2>&1
status=0
# --noconftest: the shared fixtures need the whole app; these two files need only torch.
"$PY" -m pytest --noconftest -p no:cacheprovider -q -rs \
    tests/test_quantize.py tests/test_int8_rows.py >"$OUT/tests.txt" 2>&1 || status=1
"$PY" scripts/bench_quantization.py --device "$DEVICE" --model-dir "$GPU/captioner" \
    --modes none,fp16,bf16,int8,nf4 --rounds 3 --markdown-out "$OUT/quantization.md" \
    >"$OUT/bench.txt" 2>&1 || status=1
tail -5 "$OUT/tests.txt"
cat "$OUT/quantization.md" 2>/dev/null || tail -20 "$OUT/bench.txt"
exit $status
