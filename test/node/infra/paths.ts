// Repository paths the infra checks read, and their names as failure messages show them.
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const repoPath = (relative: string) => `${REPO_ROOT}${relative}`;

export const FILES = {
  dockerfile: 'infra/gpu-function.Dockerfile',
  dockerignore: '.dockerignore',
  service: 'infra/cloudrun/gpu-function.service.yaml',
  wrangler: 'wrangler.toml',
  config: 'shared/src/config.ts',
  infraReadme: 'infra/README.md',
  readme: 'README.md',
  cloudflareScript: 'infra/cloudflare-setup.sh',
  gcpScript: 'infra/deploy-gpu-function.sh',
  pinScript: 'infra/pin-images.sh',
} as const;
