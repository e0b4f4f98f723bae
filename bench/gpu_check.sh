#!/usr/bin/env bash
# The GPU check: `pytest -m gpu tests/test_gpu.py`, then `bench/gpu.py --json`, on one GPU machine.
#
# Two steps, the first here (where PyPI is reachable), the second on the GPU machine:
#
#   bash bench/gpu_check.sh --fetch-wheels    # here: pinned wheels of what that machine lacks -> .whl/
#   bash bench/gpu_check.sh                   # there (device tool: carry [".whl"]), ~3-4 min
#
# The GPU machine has its own python3 with a CUDA torch (not this checkout's .venv, a CPU torch)
# and no network. It lacks Dask and Zarr (config validation, the synthetic masks and the engine
# import them) and MONAI; .whl/ (ignored by git) carries them as wheels for CPython 3.12,
# installed with --no-index --no-deps into a private folder. Ray and MLflow are not needed by
# these checks (and Ray's wheel alone is over the tool's 64 MiB). Without .whl/ the tests that
# need Dask/Zarr skip and the bench reports those parts as errors: the check still runs.
#
# Writes under $OUT (default ./gpu_out): env.txt, pytest_gpu.log, pytest_gpu.xml (junit, with the
# figures the tests record), bench_gpu.json, bench_gpu.log, summary.txt. Each part runs whatever
# happened to the one before; the exit status is 0 only if every part succeeded.
#
# Environment: PYTHON (default python3), OUT, PYTEST_TIMEOUT (200 s), BENCH_TIMEOUT (300 s),
# BENCH_BUDGET (200 s: the bench starts no part after it), BENCH_ARGS (extra bench/gpu.py flags).

set -u
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
WHEELS="$REPO/.whl"
PINS=(dask==2026.11.0 partd==1.4.2 locket==1.0.0 zarr==3.1.6 numcodecs==0.16.6
      donfig==0.8.1.post1 google-crc32c==1.9.0 monai==1.6.1)

if [ "${1:-}" = "--fetch-wheels" ]; then
    PIP_PY="${PYTHON:-}"
    [ -z "$PIP_PY" ] && { [ -x "$REPO/.venv/bin/python" ] && PIP_PY="$REPO/.venv/bin/python" || PIP_PY=python3; }
    mkdir -p "$WHEELS"
    "$PIP_PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 --platform any -d "$WHEELS" "${PINS[@]}" || exit 1
    git -C "$REPO" check-ignore -q "$WHEELS" || echo "warning: $WHEELS is not ignored by git"
    ls -l "$WHEELS"; du -sh "$WHEELS"
    exit 0
fi

OUT="${OUT:-$REPO/gpu_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
START=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - START )) s] $*"; }

# ---- 0. environment ---------------------------------------------------------------------------
stamp "environment" | tee "$OUT/env.txt"
SITE=/tmp/distpaint-gpu-site
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    rm -rf "$SITE"
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" "$WHEELS"/*.whl >>"$OUT/env.txt" 2>&1; then
        echo "installed $(ls "$WHEELS" | wc -l) carried wheels into $SITE" | tee -a "$OUT/env.txt"
    else
        echo "WARNING: installing the carried wheels failed (see env.txt)" | tee -a "$OUT/env.txt"
    fi
else
    echo "WARNING: no $WHEELS/*.whl: run 'bash bench/gpu_check.sh --fetch-wheels' where PyPI is" \
         "reachable and carry .whl; tests needing dask/zarr will skip" | tee -a "$OUT/env.txt"
fi
export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
{
    nvidia-smi -L 2>&1 || echo "nvidia-smi: not available"
    "$PY" - <<'EOF'
import importlib, platform, sys
print("python", platform.python_version(), sys.executable)
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
    import torch.distributed as dist
    print("nccl", dist.is_available() and dist.is_nccl_available())
except Exception as exc:
    print("torch: FAILED", exc)
have, missing = [], []
for name in ("numpy", "scipy", "skimage", "yaml", "dask", "zarr", "numcodecs", "monai", "ray",
             "mlflow", "optuna", "rasterio", "geopandas", "shapely", "typer", "rich", "psutil",
             "tifffile", "imageio", "networkx", "pytest", "pytest_timeout", "hypothesis", "distpaint"):
    try:
        mod = importlib.import_module(name)
        have.append(f"{name} {getattr(mod, '__version__', '?')}")
    except Exception as exc:
        missing.append(f"{name} ({type(exc).__name__})")
print("present:", ", ".join(have))
print("MISSING:", ", ".join(missing) or "none")
EOF
} 2>&1 | tee -a "$OUT/env.txt"

# ---- 1. tests ------------------------------------------------------------------------------------
stamp "pytest -m gpu tests/test_gpu.py (timeout ${PYTEST_TIMEOUT:-200} s)"
PER_TEST=()
"$PY" -c "import pytest_timeout" 2>/dev/null && PER_TEST=(--timeout 150)
timeout -k 10 "${PYTEST_TIMEOUT:-200}" "$PY" -m pytest -m gpu tests/test_gpu.py -q -rA \
    -p no:cacheprovider -o junit_family=xunit1 --junitxml="$OUT/pytest_gpu.xml" "${PER_TEST[@]}" \
    >"$OUT/pytest_gpu.log" 2>&1
TEST_RC=$?
tail -n 40 "$OUT/pytest_gpu.log"
stamp "pytest exit status $TEST_RC"

# ---- 2. benchmark ------------------------------------------------------------------------------
stamp "bench/gpu.py --json (timeout ${BENCH_TIMEOUT:-300} s, budget ${BENCH_BUDGET:-200} s)"
# shellcheck disable=SC2086
timeout -k 10 "${BENCH_TIMEOUT:-300}" "$PY" bench/gpu.py --json --out "$OUT/bench_gpu.json" \
    --budget-s "${BENCH_BUDGET:-200}" ${BENCH_ARGS:-} >/dev/null 2>"$OUT/bench_gpu.log"
BENCH_RC=$?
tail -n 25 "$OUT/bench_gpu.log"
stamp "bench exit status $BENCH_RC"

# ---- 3. summary --------------------------------------------------------------------------------
"$PY" - "$OUT" "$TEST_RC" "$BENCH_RC" <<'EOF' 2>&1 | tee "$OUT/summary.txt"
import json, pathlib, sys
import xml.etree.ElementTree as ET
out, test_rc, bench_rc = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
print(f"pytest exit {test_rc}, bench exit {bench_rc}")
try:
    root = ET.parse(out / "pytest_gpu.xml").getroot()
    for case in root.iter("testcase"):
        state = "passed"
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                state = f"{tag}: {(node.get('message') or '')[:300]}"
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        print(f"  {case.get('name')}: {state}" + (f"  {props}" if props else ""))
except Exception as exc:
    print("no junit results:", exc)
try:
    doc = json.loads((out / "bench_gpu.json").read_text())
except Exception as exc:
    print("no bench JSON:", exc)
    sys.exit(0)
dev, peak = doc.get("device", {}), doc.get("peak", {})
print(f"device {dev.get('name')} torch {dev.get('torch')}; peak {peak.get('dense_bf16_tflops')} "
      f"({peak.get('source')}); matmul {peak.get('measured_matmul_bf16')}")
train = doc.get("train", {})
for key in ("fp32", "bf16"):
    part = train.get(key, {})
    print(f"train {key}: median {part.get('median_s')} s, {part.get('patches_per_s')} patches/s, "
          f"{part.get('achieved_tflops')} TFLOP/s ({part.get('fraction_of_bf16_peak')} of peak), "
          f"phases {part.get('phases_s')}" if "median_s" in part else f"train {key}: {part}")
print("train bf16 speedup", train.get("bf16_speedup"))
infer = doc.get("infer", {})
print("resolve_model gpu:", infer.get("resolve_model_gpu"))
for row in infer.get("models", []):
    if "pipeline_s" in row:
        print(f"infer {row['model']}: pipeline {row['pipeline_mpx_per_s']} Mpx/s, raw {row['raw_mpx_per_s']}, "
              f"device {row['device_mpx_per_s']}; {row['flop_per_window_px']} FLOP/px; device "
              f"{row['device_tflops']} TFLOP/s = {row.get('device_fraction_of_bf16_peak')} of peak; "
              f"pipeline {row.get('pipeline_fraction_of_bf16_peak')} of peak")
    else:
        print("infer:", {k: v for k, v in row.items() if k != "traceback"})
for key in ("fp32", "default_keep"):
    part = infer.get(key, {})
    print(f"infer {key}:", {k: v for k, v in part.items() if k in (
        "model", "pipeline_mpx_per_s", "device_mpx_per_s", "bf16_mask_agreement", "bf16_added_iou",
        "bf16_speedup_pipeline", "bf16_speedup_device", "keep", "vs_keep_all", "error", "skipped")})
monai = doc.get("monai", {})
for row in monai.get("models", []) or [monai]:
    print("monai:", {k: v for k, v in row.items() if k not in ("what", "traceback")})
print("bench errors:", doc.get("errors"), "seconds", doc.get("seconds"))
EOF
stamp "done"
[ "$TEST_RC" = 0 ] && [ "$BENCH_RC" = 0 ]
