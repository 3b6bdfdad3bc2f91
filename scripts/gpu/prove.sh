#!/usr/bin/env bash
# GPU machine, the last call of the sequence in scripts/gpu/README.md (run from the repository
# root of the device's copy): stashes this call's part, checks that every part is there and
# intact, unpacks the bundle, rebuilds the fixtures' weights, puts onnxruntime-node 1.29.0 (with
# the CUDA provider beside its core) where the project's code resolves `onnxruntime-node`,
# points LD_LIBRARY_PATH at the CUDA 13 libraries of the Python nvidia packages, and runs
# scripts/gpu/prove.ts: once with TF32 off (exact float32 checks, placement, speed), once with
# onnxruntime's default TF32 for float32 (informational). Results in $OUT.
#
#   bash scripts/gpu/prove.sh [--cpu] [prove.ts options...]
#
# --cpu is the dry run of the same sequence on a machine without a GPU; run it in a copy of the
# working tree (scripts/gpu/dry-run.sh), never in a checkout whose node_modules others use.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
mode=cuda
if [ "${1:-}" = --cpu ]; then
  mode=cpu
  shift
fi
out=${OUT:-$repo/.cache/gpu-prove/out}
stash=${JSLM_GPU_STASH:-/var/tmp/jslm-gpu-parts}
root=${JSLM_GPU_ROOT:-/var/tmp/jslm-gpu}
work=${JSLM_GPU_WORK:-/var/tmp/jslm-gpu-work}
mkdir -p "$out"
exec > >(tee -a "$out/prove-sh.log") 2>&1
tee_pid=$!
# Let tee write the last lines before the call returns (left-over processes are killed then).
trap 'exec 1>&- 2>&-; wait "$tee_pid" 2>/dev/null || true' EXIT
t0=$SECONDS
step() { echo "[prove.sh $((SECONDS - t0))s] $*"; }

step "parts"
JSLM_GPU_REQUIRE_ALL=1 bash scripts/gpu/stash.sh

step "unpack"
mapfile -t parts < <(find "$stash" -maxdepth 1 -name 'bundle.tar.xz.part-*' | sort)
(cd "$stash" && cat "${parts[@]}" | sha256sum | sed 's/-$/bundle.tar.xz/' | diff - <(grep ' bundle.tar.xz$' SHA256SUMS)) ||
  { echo "the joined parts do not match bundle.tar.xz in SHA256SUMS" >&2; exit 2; }
rm -rf "$root"
mkdir -p "$root"
cat "${parts[@]}" | xz -dc -T0 | tar -x -C "$root"
bundle=$root/jslm-gpu
node=$bundle/node/bin/node
"$node" --version

step "onnxruntime-node"
mkdir -p node_modules
for pkg in onnxruntime-node onnxruntime-common; do
  if [ -e "node_modules/$pkg" ] && [ ! -L "node_modules/$pkg" ]; then
    echo "node_modules/$pkg is a real install here: run prove.sh on the device or through dry-run.sh" >&2
    exit 2
  fi
  ln -sfn "$bundle/node_modules/$pkg" "node_modules/$pkg"
done
native=$bundle/node_modules/onnxruntime-node/bin/napi-v6/linux/x64

step "fixtures"
for f in "$bundle"/fixtures/*/; do python3 scripts/gpu/regen_fixture.py "${f%/}"; done

if [ "$mode" = cuda ]; then
  step "CUDA libraries"
  site=$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)
  libdirs=$(find "${site:-/nonexistent}/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd: || true)
  if [ -z "$libdirs" ]; then
    libdirs=$(find / -xdev \( -name 'libcublas.so.13*' -o -name 'libcudart.so.13*' -o -name 'libcurand.so.10*' \) \
      -printf '%h\n' 2>/dev/null | sort -u | paste -sd: || true)
  fi
  export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # Anything still missing (the driver's libcuda.so.1 may sit outside the loader's paths): look
  # for it by name, once.
  for lib in $(ldd "$native/libonnxruntime_providers_cuda.so" | awk '/not found/ {print $1}'); do
    found=$(find / \( -path /proc -o -path /sys \) -prune -o -name "$lib" -print 2>/dev/null | head -1 || true)
    if [ -n "$found" ]; then LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$found")"; fi
  done
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  {
    nvidia-smi || true
    echo "--- ldd libonnxruntime_providers_cuda.so"
    ldd "$native/libonnxruntime_providers_cuda.so"
  } >"$out/machine.txt" 2>&1
  if grep -q 'not found' "$out/machine.txt"; then
    grep 'not found' "$out/machine.txt" >&2
    echo "the CUDA provider cannot find its libraries (see machine.txt)" >&2
    exit 3
  fi
fi

step "prove ($mode)"
set +e
NVIDIA_TF32_OVERRIDE=0 timeout "${PROVE_TIMEOUT_S:-450}" "$node" scripts/gpu/prove.ts --provider "$mode" \
  --fixtures "$bundle/fixtures" --out "$out" --work "$work" "$@"
rc=$?
if [ "$mode" = cuda ] && [ "$rc" -ne 124 ]; then
  step "float32 with TF32 (onnxruntime's default; informational)"
  timeout "${TF32_TIMEOUT_S:-60}" "$node" scripts/gpu/prove.ts --provider cuda --tf32 --stages fixtures \
    --dtypes float32 --fixtures "$bundle/fixtures" --out "$out" --work "$work"
fi
set -e
cp -f "$work"/placement-*.log "$out/" 2>/dev/null || true
step "done (prove.ts exit $rc)"
for md in "$out"/prove-*-tf32.md "$out/prove-$mode.md"; do if [ -f "$md" ]; then cat "$md"; fi; done
exit "$rc"
