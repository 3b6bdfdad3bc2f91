#!/usr/bin/env bash
# GPU machine, every call of the sequence in scripts/gpu/README.md: copies the bundle parts this
# call carried (.cache/gpu-bundle/) out of the working tree into a folder later calls on the
# same machine find, checks every part there against SHA256SUMS (a bad part is removed) and
# prints what is still missing (an error only with JSLM_GPU_REQUIRE_ALL=1, as prove.sh sets it).
# Also prints a few facts of the machine, at no extra cost.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=.cache/gpu-bundle
stash=${JSLM_GPU_STASH:-/var/tmp/jslm-gpu-parts}

[ -f "$src/SHA256SUMS" ] || { echo "stash: no $src/SHA256SUMS (carry it with every call)" >&2; exit 2; }
mkdir -p "$stash"
cp -f "$src/SHA256SUMS" "$src/manifest.json" "$stash/"
shopt -s nullglob
for part in "$src"/bundle.tar.xz.part-*; do cp -f "$part" "$stash/"; done

cd "$stash"
missing=0
while read -r sum name; do
  case $name in *.part-*) ;; *) continue ;; esac
  if [ ! -f "$name" ]; then
    echo "stash: missing $name"
    missing=$((missing + 1))
  elif echo "$sum  $name" | sha256sum -c --status; then
    echo "stash: ok      $name"
  else
    echo "stash: BAD     $name (removed; carry it again)"
    rm -f "$name"
    missing=$((missing + 1))
  fi
done <SHA256SUMS
echo "stash: parts missing: $missing"

if [ -z "${JSLM_GPU_QUIET:-}" ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader 2>/dev/null |
    sed 's/^/machine: gpu /' || echo "machine: no nvidia-smi"
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(df -h --output=avail /var/tmp | tail -1 | tr -d ' ') free in /var/tmp"
  python3 -c 'import nvidia, os; print("machine: python nvidia packages in", os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null ||
    echo "machine: no python nvidia packages"
fi
[ "$missing" -eq 0 ] || [ -z "${JSLM_GPU_REQUIRE_ALL:-}" ]
