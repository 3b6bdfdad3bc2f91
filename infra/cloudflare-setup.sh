#!/usr/bin/env bash
# The Cloudflare side, step by step (see infra/README.md for the whole path).
#
#   infra/cloudflare-setup.sh resources   create the R2 bucket for the weights and the KV
#                                         namespace for API keys, and write the namespace id
#                                         into wrangler.toml (replacing the all-zero placeholder)
#   infra/cloudflare-setup.sh deploy      deploy the Worker: the compiled tokenizer it bundles,
#                                         its secrets, the GPU function's URL, an optional custom
#                                         domain; the Durable Object migration in wrangler.toml
#                                         is applied by this deploy
#
# Environment: R2_BUCKET (jslm-weights); R2_LOCATION (enam: near us-central1/us-east4; weur for
# europe-west*, apac for asia-*); for deploy GPU_FUNCTION_URL (required), TOKENIZER_MODEL (the
# tokenizer.model to compile; else the shared fixture, else downloaded), CUSTOM_DOMAIN (a
# hostname in a zone on this account; else the workers.dev URL), COLD_START_TIMEOUT_S (300), and
# SECRET_<NAME> for each Worker secret, or SECRET_<NAME>_FILE naming a file that holds it (the
# invoker key file for GPU_INVOKER_KEY); asked for when neither is set. DRY_RUN=1 bundles and
# checks the deploy without uploading; WRANGLER_CONFIG names another config file (default
# wrangler.toml).
# Log in first: `npx wrangler login` (or set CLOUDFLARE_API_TOKEN).
set -euo pipefail

cd "$(dirname "$0")/.."
R2_BUCKET="${R2_BUCKET:-jslm-weights}"
R2_LOCATION="${R2_LOCATION:-enam}"
NODE="${NODE:-node_modules/.bin/node}"
[[ -x "$NODE" ]] || NODE=node
CONFIG="${WRANGLER_CONFIG:-wrangler.toml}"
export WRANGLER_SEND_METRICS=false

# The repository's own wrangler (WRANGLER overrides it, e.g. for a dry run of this script).
wrangler() {
  if [[ -n "${WRANGLER:-}" ]]; then "$WRANGLER" "$@"; else "$NODE" node_modules/wrangler/bin/wrangler.js "$@"; fi
}

KV_PLACEHOLDER=00000000000000000000000000000000

resources() {
  if wrangler r2 bucket info "$R2_BUCKET" >/dev/null 2>&1; then
    echo "R2 bucket ${R2_BUCKET} exists" >&2
  else
    wrangler r2 bucket create "$R2_BUCKET" --location "$R2_LOCATION"
  fi
  if grep -q "id = \"${KV_PLACEHOLDER}\"" "$CONFIG"; then
    local out id
    out="$(wrangler kv namespace create API_KEYS)"
    printf '%s\n' "$out" >&2
    id="$(grep -oE '[0-9a-f]{32}' <<<"$out" | head -n 1)"
    [[ -n "$id" ]] || { echo "no namespace id in wrangler's output" >&2; exit 1; }
    sed -i.bak "s/id = \"${KV_PLACEHOLDER}\"/id = \"${id}\"/" "$CONFIG" && rm -f "${CONFIG}.bak"
    echo "${CONFIG} now names KV namespace ${id}; commit it with your deployment" >&2
  else
    echo "${CONFIG} already names a KV namespace; left as is" >&2
  fi
  cat >&2 <<EOF
Next, in the dashboard (R2 > Manage API tokens), create two R2 API tokens for ${R2_BUCKET}:
  - "Object Read only", for the GPU function (store it with infra/deploy-gpu-function.sh secrets);
  - "Object Read & Write", for uploading the model from your machine.
The S3 endpoint is https://<ACCOUNT_ID>.r2.cloudflarestorage.com (region: auto).
EOF
}

deploy() {
  : "${GPU_FUNCTION_URL:?set GPU_FUNCTION_URL to the Cloud Run service URL (infra/deploy-gpu-function.sh url)}"
  # The Worker's secret names come from shared/src/config.ts, so this list cannot fall behind.
  local names name source value
  names="$("$NODE" infra/settings-table.ts --secrets edge)"
  for name in $names; do
    source="SECRET_${name}"
    from_file="SECRET_${name}_FILE"
    if [[ -z "${!source:-}" && -n "${!from_file:-}" ]]; then
      export "${source}=$(cat "${!from_file}")"
    fi
    if [[ -z "${!source:-}" ]]; then
      value=""
      read -r -s -p "value for Worker secret ${name} (empty leaves the deployed one unchanged): " value || true
      echo >&2
      export "${source}=${value}"
    fi
  done
  workdir="$(mktemp -d)"
  trap 'rm -rf "$workdir"' EXIT
  # JSON written by node from the environment: no quoting pitfalls, and the values never appear
  # in a command line. Empty values are left out, so wrangler keeps what is deployed.
  (umask 077 && "$NODE" -e '
    const out = {};
    for (const n of process.argv.slice(1)) { const v = process.env["SECRET_" + n]; if (v) out[n] = v; }
    process.stdout.write(JSON.stringify(out));
  ' $names >"$workdir/secrets.json")
  # The Worker bundles the compiled tokenizer, a generated file a fresh clone does not have.
  "$NODE" infra/worker-assets.ts
  local args=(deploy --config "$CONFIG" --var "GPU_FUNCTION_URL:${GPU_FUNCTION_URL}"
    --var "COLD_START_TIMEOUT_S:${COLD_START_TIMEOUT_S:-300}" --secrets-file "$workdir/secrets.json")
  [[ -z "${CUSTOM_DOMAIN:-}" ]] || args+=(--domain "$CUSTOM_DOMAIN")
  [[ "${DRY_RUN:-0}" != 1 ]] || args+=(--dry-run --outdir "${DRY_RUN_OUTDIR:-$workdir/dist}")
  wrangler "${args[@]}"
}

case "${1:-}" in
  resources | deploy) "$1" ;;
  *)
    sed -n '2,21p' "$0" >&2
    exit 2
    ;;
esac
