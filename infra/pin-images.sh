#!/usr/bin/env bash
# Pins every base image of the Dockerfile to the digest its tag points to now.
#
#   infra/pin-images.sh [DOCKERFILE]        (default: infra/gpu-function.Dockerfile)
#
# Each `ARG <NAME>_IMAGE=<repository>:<tag>[@sha256:<digest>]` line is resolved again from its
# tag and rewritten as `...:<tag>@sha256:<digest>`; the "# unpinned" comment above it is dropped.
# Run it to pin a new image and to refresh the pins (security updates), then rebuild and commit.
# Needs registry access and one of: crane, or docker with buildx.
set -euo pipefail

dockerfile="${1:-$(dirname "$0")/gpu-function.Dockerfile}"
[[ -f "$dockerfile" ]] || { echo "pin-images: no such file: $dockerfile" >&2; exit 2; }

# Prints the digest (sha256:...) the reference's tag points to: the multi-platform index when
# there is one, so `FROM --platform=...` still selects the right image from it.
resolve_digest() {
  local ref="$1" digest
  if command -v crane >/dev/null 2>&1; then
    digest="$(crane digest "$ref")"
  elif docker buildx version >/dev/null 2>&1; then
    digest="$(docker buildx imagetools inspect "$ref" | awk '$1 == "Digest:" { print $2; exit }')"
  else
    echo "pin-images: needs crane or docker buildx to resolve $ref" >&2
    return 1
  fi
  if [[ ! "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "pin-images: could not resolve a digest for $ref (got '$digest')" >&2
    return 1
  fi
  printf '%s\n' "$digest"
}

tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
pending_comment=""
pinned=0
while IFS= read -r line || [[ -n "$line" ]]; do
  # Hold an "unpinned" marker until we see whether an image argument follows it.
  if [[ "$line" =~ ^#\ unpinned ]]; then
    pending_comment="$line"
    continue
  fi
  if [[ "$line" =~ ^ARG\ ([A-Z0-9_]+_IMAGE)=([^[:space:]]+)$ ]]; then
    name="${BASH_REMATCH[1]}"
    ref="${BASH_REMATCH[2]%@*}"
    digest="$(resolve_digest "$ref")"
    printf 'ARG %s=%s@%s\n' "$name" "$ref" "$digest" >>"$tmp"
    echo "pinned $name: $ref@$digest" >&2
    pending_comment=""
    pinned=$((pinned + 1))
    continue
  fi
  if [[ -n "$pending_comment" ]]; then
    printf '%s\n' "$pending_comment" >>"$tmp"
    pending_comment=""
  fi
  printf '%s\n' "$line" >>"$tmp"
done <"$dockerfile"
[[ -z "$pending_comment" ]] || printf '%s\n' "$pending_comment" >>"$tmp"

if [[ "$pinned" -eq 0 ]]; then
  echo "pin-images: no 'ARG <NAME>_IMAGE=...' lines in $dockerfile" >&2
  exit 1
fi
cat "$tmp" >"$dockerfile"
echo "pin-images: $pinned image(s) pinned in $dockerfile; rebuild, test and commit it" >&2
