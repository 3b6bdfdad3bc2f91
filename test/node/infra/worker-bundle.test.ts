// `wrangler deploy --dry-run` bundles the edge Worker within Cloudflare's limits, and what its
// startup costs is measured (global-scope evaluation in V8, and a cold workerd start).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BundleResult,
  type BundleSizes,
  bundleSizes,
  bundleWorker,
  missingModule,
  nodeEvaluationMs,
  WORKER_LIMITS,
  workerdStartup,
} from '../../../infra/worker-bundle.ts';
import { repoPath } from './paths.ts';

const TOKENIZER_ASSET_MODULE = 'scripts/lib/tokenizer-asset.ts';
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

/**
 * Bundles the Worker. The edge imports a generated file (the compiled tokenizer in .cache/);
 * when that is missing, it is generated with the project's own helper if present. Returns why
 * the bundle could not be made when the asset cannot be generated here.
 */
async function bundleOrSkipReason(outdir: string): Promise<{ result: BundleResult; skip?: string }> {
  let result = bundleWorker(outdir);
  const missing = result.ok ? undefined : missingModule(result.output);
  if (!missing) return { result };
  if (!existsSync(repoPath(TOKENIZER_ASSET_MODULE))) {
    return {
      result,
      skip: `the Worker imports '${missing}', and ${TOKENIZER_ASSET_MODULE} is not there to make it`,
    };
  }
  const asset = (await import(/* @vite-ignore */ pathToFileURL(repoPath(TOKENIZER_ASSET_MODULE)).href)) as {
    ensureCompiledTokenizer?: () => unknown;
  };
  if (typeof asset.ensureCompiledTokenizer !== 'function') {
    return {
      result,
      skip: `${TOKENIZER_ASSET_MODULE} has no ensureCompiledTokenizer() to make '${missing}'`,
    };
  }
  await asset.ensureCompiledTokenizer();
  result = bundleWorker(outdir);
  return { result };
}

describe('edge Worker bundle (wrangler deploy --dry-run)', () => {
  const outdir = mkdtempSync(join(tmpdir(), 'edge-bundle-'));
  let bundled: { result: BundleResult; skip?: string };
  let sizes: BundleSizes | undefined;

  beforeAll(async () => {
    bundled = await bundleOrSkipReason(outdir);
    if (bundled.result.ok) sizes = bundleSizes(outdir, bundled.result.output);
  }, 180_000);
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  it('bundles, within the upload size limits', (ctx) => {
    if (bundled.skip) ctx.skip(bundled.skip);
    expect(bundled.result.ok, bundled.result.output).toBe(true);
    const s = sizes!;
    console.log(
      `edge bundle: ${kib(s.rawBytes)} raw, ${kib(s.gzipBytes)} gzip ` +
        `(${s.modules.map((m) => `${m.name} ${kib(m.bytes)}`).join(', ')}); ` +
        `source maps ${kib(s.sourceMapBytes)} raw, ${kib(s.sourceMapGzipBytes)} gzip`,
    );
    // Measured the way wrangler measures it (gzip of all modules), and in agreement with it.
    expect(s.wranglerReport, 'wrangler printed "Total Upload: ... / gzip: ..."').toBeDefined();
    expect(Math.abs(s.rawBytes / 1024 - s.wranglerReport!.rawKiB)).toBeLessThan(1);
    expect(Math.abs(s.gzipBytes / 1024 - s.wranglerReport!.gzipKiB) / s.wranglerReport!.gzipKiB).toBeLessThan(
      0.02,
    );
    // The free plan's limit, so the deployment works on either plan.
    expect(
      s.gzipBytes,
      `gzip upload vs Workers Free limit ${kib(WORKER_LIMITS.freeGzipBytes)}`,
    ).toBeLessThanOrEqual(WORKER_LIMITS.freeGzipBytes);
    expect(s.rawBytes).toBeLessThanOrEqual(WORKER_LIMITS.rawBytes);
    expect(s.sourceMapGzipBytes).toBeLessThanOrEqual(WORKER_LIMITS.sourceMapGzipBytes);
  });

  it('evaluates its global scope well within the startup limit', (ctx) => {
    if (bundled.skip) ctx.skip(bundled.skip);
    expect(bundled.result.ok, bundled.result.output).toBe(true);
    const ms = nodeEvaluationMs(outdir, 3);
    console.log(`edge global scope evaluation (V8 in Node, median of 3): ${ms.toFixed(1)} ms`);
    // Half the platform's 1 s, leaving room for a slower or busier machine than this one.
    expect(ms).toBeLessThan(WORKER_LIMITS.startupMs / 2);
  }, 120_000);

  it('starts in workerd with the bindings of wrangler.toml and answers its first request', async (ctx) => {
    if (bundled.skip) ctx.skip(bundled.skip);
    expect(bundled.result.ok, bundled.result.output).toBe(true);
    // One cold start: that the bundle starts with wrangler.toml's bindings and serves. Its share
    // of workerd's start is too small to see against the noise of one run (the CLI,
    // `node infra/worker-bundle.ts`, compares three runs with a one-line Worker).
    const w = await workerdStartup(outdir, 1, false);
    console.log(
      `edge in workerd (one cold start): ready in ${w.bundleReadyMs.toFixed(0)} ms; ` +
        `first GET /healthz ${w.firstRequest.status} in ${w.firstRequest.ms.toFixed(1)} ms`,
    );
    expect(w.firstRequest.status).toBe(200);
  }, 120_000);
});
