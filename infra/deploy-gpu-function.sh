#!/usr/bin/env bash
# The GPU function on Google Cloud Run, step by step (see infra/README.md for the whole path).
#
#   infra/deploy-gpu-function.sh setup        enable APIs, create the image repository, the
#                                             service's account and the edge's invoker account
#   infra/deploy-gpu-function.sh secrets      store the secrets in Secret Manager (asks for each
#                                             value, or reads SECRET_<VARIABLE> if that is set)
#   infra/deploy-gpu-function.sh build        build and push the image (Docker with buildx)
#   infra/deploy-gpu-function.sh deploy       apply infra/cloudrun/gpu-function.service.yaml and
#                                             let only the invoker account call the service
#   infra/deploy-gpu-function.sh invoker-key  write a key of the invoker account for the edge
#                                             (GPU_INVOKER_KEY) to INVOKER_KEY_FILE, mode 0600
#   infra/deploy-gpu-function.sh url          print the service URL
#
# Environment: PROJECT_ID (required); REGION (us-central1); SERVICE (jslm-gpu-function);
# INVOKER_NAME (jslm-edge-invoker); REPOSITORY (jslm); IMAGE_TAG (the git commit); for deploy
# also R2_ACCOUNT_ID and MODEL_URI (s3://bucket/prefix of the uploaded model); INVOKER_KEY_FILE
# (gpu-invoker-key.json). ALLOW_UNPINNED=1 builds with unpinned base images.
# Needs gcloud, node (repository dependencies installed), and docker buildx for `build`.
set -euo pipefail

cd "$(dirname "$0")/.."
: "${PROJECT_ID:?set PROJECT_ID to the Google Cloud project}"
REGION="${REGION:-us-central1}"
SERVICE="${SERVICE:-jslm-gpu-function}"
REPOSITORY="${REPOSITORY:-jslm}"
IMAGE_TAG="${IMAGE_TAG:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo latest)}"
IMAGE="${REGION}-docker.pkg.dev/${PROJECT_ID}/${REPOSITORY}/gpu-function:${IMAGE_TAG}"
SERVICE_ACCOUNT="${SERVICE}@${PROJECT_ID}.iam.gserviceaccount.com"
# The only identity allowed to call the service (roles/run.invoker): the edge, with its key.
INVOKER_NAME="${INVOKER_NAME:-jslm-edge-invoker}"
INVOKER_ACCOUNT="${INVOKER_NAME}@${PROJECT_ID}.iam.gserviceaccount.com"
DOCKERFILE=infra/gpu-function.Dockerfile
NODE="${NODE:-node_modules/.bin/node}"
[[ -x "$NODE" ]] || NODE=node

gc() { gcloud --project "$PROJECT_ID" "$@"; }

setup() {
  gc services enable run.googleapis.com artifactregistry.googleapis.com secretmanager.googleapis.com
  if ! gc artifacts repositories describe "$REPOSITORY" --location "$REGION" >/dev/null 2>&1; then
    gc artifacts repositories create "$REPOSITORY" --repository-format docker --location "$REGION" \
      --description "jslm container images"
  fi
  if ! gc iam service-accounts describe "$SERVICE_ACCOUNT" >/dev/null 2>&1; then
    # No project roles: it only reads its own secrets (granted per secret in `secrets`).
    gc iam service-accounts create "$SERVICE" --display-name "jslm GPU function"
  fi
  if ! gc iam service-accounts describe "$INVOKER_ACCOUNT" >/dev/null 2>&1; then
    # No project roles either: deploy grants it roles/run.invoker on this one service.
    gc iam service-accounts create "$INVOKER_NAME" --display-name "jslm edge (invokes the GPU function)"
  fi
  gcloud auth configure-docker "${REGION}-docker.pkg.dev" --quiet
  echo "setup done. Cloud Run L4 GPUs need quota in ${REGION}: see infra/README.md." >&2
}

secrets() {
  # The secret names and the variables they feed come from the service definition itself.
  local secret env value source
  while read -r secret env <&3; do
    if ! gc secrets describe "$secret" >/dev/null 2>&1; then
      gc secrets create "$secret" --replication-policy automatic
    fi
    # SECRET_<VARIABLE>, not <VARIABLE>: a shell's own AWS_* credentials must not be picked up.
    source="SECRET_${env}"
    value="${!source:-}"
    if [[ -z "$value" ]]; then
      read -r -s -p "value for ${env} (Secret Manager '${secret}'; empty keeps the current one): " value || true
      echo >&2
    fi
    if [[ -n "$value" ]]; then
      # Through stdin, so the value never appears in a process list or shell history.
      printf '%s' "$value" | gc secrets versions add "$secret" --data-file=- >/dev/null
      echo "stored a new version of ${secret}" >&2
    fi
    gc secrets add-iam-policy-binding "$secret" --member "serviceAccount:${SERVICE_ACCOUNT}" \
      --role roles/secretmanager.secretAccessor >/dev/null
  done 3< <("$NODE" infra/service-definition.ts secrets)
}

build() {
  if grep -q '^# unpinned' "$DOCKERFILE" && [[ "${ALLOW_UNPINNED:-0}" != 1 ]]; then
    echo "base images are not pinned: run infra/pin-images.sh (or set ALLOW_UNPINNED=1)" >&2
    exit 1
  fi
  docker buildx build --platform linux/amd64 -f "$DOCKERFILE" -t "$IMAGE" --push .
  echo "pushed ${IMAGE}" >&2
}

deploy() {
  : "${R2_ACCOUNT_ID:?set R2_ACCOUNT_ID (Cloudflare account id, for the R2 endpoint)}"
  : "${MODEL_URI:?set MODEL_URI to the uploaded model, s3://bucket/prefix}"
  workdir="$(mktemp -d)"
  trap 'rm -rf "$workdir"' EXIT
  local rendered="$workdir/service.yaml"
  IMAGE="$IMAGE" SERVICE="$SERVICE" REGION="$REGION" SERVICE_ACCOUNT="$SERVICE_ACCOUNT" \
    R2_ACCOUNT_ID="$R2_ACCOUNT_ID" MODEL_URI="$MODEL_URI" \
    "$NODE" infra/service-definition.ts render >"$rendered"
  gc run services replace "$rendered" --region "$REGION"
  # Invoker IAM: the edge's account may call the service; the public may not (an earlier
  # deployment may have allowed allUsers: that binding is removed if present).
  gc run services add-iam-policy-binding "$SERVICE" --region "$REGION" \
    --member "serviceAccount:${INVOKER_ACCOUNT}" --role roles/run.invoker >/dev/null
  for member in allUsers allAuthenticatedUsers; do
    gc run services remove-iam-policy-binding "$SERVICE" --region "$REGION" \
      --member "$member" --role roles/run.invoker >/dev/null 2>&1 || true
  done
  url
}

invoker_key() {
  local file="${INVOKER_KEY_FILE:-gpu-invoker-key.json}"
  if [[ -e "$file" ]]; then
    echo "${file} exists; move it away or set INVOKER_KEY_FILE" >&2
    exit 1
  fi
  # Readable only by you; it goes to the Worker as a secret, then delete it.
  (umask 077 && gc iam service-accounts keys create "$file" --iam-account "$INVOKER_ACCOUNT")
  chmod 600 "$file"
  cat >&2 <<EOF
wrote ${file} (a key of ${INVOKER_ACCOUNT}). Give it to the Worker, then delete it:
  SECRET_GPU_INVOKER_KEY_FILE=${file} infra/cloudflare-setup.sh deploy && rm ${file}
Old keys: gcloud iam service-accounts keys list --iam-account ${INVOKER_ACCOUNT}
EOF
}

url() {
  gc run services describe "$SERVICE" --region "$REGION" --format 'value(status.url)'
}

case "${1:-}" in
  setup | secrets | build | deploy | url) "$1" ;;
  invoker-key) invoker_key ;;
  *)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
