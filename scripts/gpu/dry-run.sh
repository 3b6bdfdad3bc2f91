#!/usr/bin/env bash
# The device call sequence of scripts/gpu/README.md, played here on the CPU: a copy of the
# working tree as a device call would see it (tracked and untracked-not-ignored files), each
# call carrying only its own part of .cache/gpu-bundle/ into the copy, stash.sh for all calls
# but the last, then prove.sh --cpu. Proves the parts rejoin and verify, the bundle unpacks,
# the fixtures rebuild, and onnxruntime-node 1.29.0 from the bundle runs the proof end to end.
#
#   bash scripts/gpu/dry-run.sh [SANDBOX] [prove.ts options...]   (default /tmp/jslm-gpu-dryrun)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
sandbox=${1:-/tmp/jslm-gpu-dryrun}
shift || true
bundle=.cache/gpu-bundle
[ -f "$bundle/manifest.json" ] || { echo "no bundle: run node scripts/gpu/prepare.ts first" >&2; exit 2; }

rm -rf "$sandbox"
mkdir -p "$sandbox/repo"
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  if [ -e "$f" ]; then printf '%s\0' "$f"; fi
done | tar --null -T - -cf - | tar -x -C "$sandbox/repo"

export JSLM_GPU_STASH=$sandbox/stash JSLM_GPU_ROOT=$sandbox/root JSLM_GPU_WORK=$sandbox/work OUT=$sandbox/out
mapfile -t parts < <(cd "$bundle" && ls bundle.tar.xz.part-* | sort)
for i in "${!parts[@]}"; do
  # A call's copy holds only what it carries: the sums, the manifest and one part.
  rm -rf "$sandbox/repo/$bundle"
  mkdir -p "$sandbox/repo/$bundle"
  cp "$bundle/SHA256SUMS" "$bundle/manifest.json" "$bundle/${parts[$i]}" "$sandbox/repo/$bundle/"
  echo "== call $((i + 1)) of ${#parts[@]}: carries ${parts[$i]}"
  if [ "$i" -lt $((${#parts[@]} - 1)) ]; then
    (cd "$sandbox/repo" && JSLM_GPU_QUIET=1 bash scripts/gpu/stash.sh)
  else
    rc=0
    (cd "$sandbox/repo" && bash scripts/gpu/prove.sh --cpu "$@") || rc=$?
  fi
done
echo "dry run results: $OUT (prove.sh exit $rc; repo $repo untouched)"
exit "$rc"
