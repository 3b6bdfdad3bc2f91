// verifyManifest: what the GPU function runs on a downloaded model folder. Every kind of
// damage must be caught and named. (Only files the converter wrote itself are tampered with
// here: a float32 conversion may hard-link the fixture.)

import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { convertCheckpoint } from '../../../gpu-function/src/convert/convert.ts';
import {
  ManifestError,
  parseManifest,
  readManifest,
  verifyManifest,
} from '../../../gpu-function/src/model-folder/manifest.ts';
import { H128, hasFixtures, useTempRoot } from './helpers.ts';

describe.skipIf(!hasFixtures)('verifyManifest', () => {
  const tempRoot = useTempRoot();
  let dir: string;

  beforeEach(async () => {
    dir = join(await tempRoot(), 'model');
    await convertCheckpoint({ checkpointDir: H128, outDir: dir, dtype: 'float16' });
  });

  it('accepts an intact folder and reports progress over every byte', async () => {
    let last = [0, 0];
    const manifest = await verifyManifest(dir, { onProgress: (done, total) => (last = [done, total]) });
    const total = manifest.files.reduce((a, f) => a + f.size, 0);
    expect(last).toEqual([total, total]);
  });

  it('catches a changed byte (same size) by its SHA-256, unless hashes are skipped', async () => {
    const file = join(dir, 'weights.bin');
    const bytes = await readFile(file);
    bytes[1000] = bytes[1000]! ^ 1;
    await writeFile(file, bytes);
    await expect(verifyManifest(dir)).rejects.toThrow(
      /weights\.bin: SHA-256 [0-9a-f]{64} does not match the manifest/,
    );
    await expect(verifyManifest(dir, { hashes: false })).resolves.toBeDefined();
  });

  it('catches a truncated or missing file', async () => {
    await truncate(join(dir, 'weights.bin'), 100);
    await expect(verifyManifest(dir, { hashes: false })).rejects.toThrow(
      /weights\.bin: size 100, manifest says \d+/,
    );
    await rm(join(dir, 'config.json'));
    await expect(verifyManifest(dir)).rejects.toThrow(ManifestError);
  });

  it('rejects a missing, unreadable or inconsistent manifest', async () => {
    const raw = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
    const check = (change: (m: typeof raw) => void) => {
      const copy = structuredClone(raw);
      change(copy);
      return () => parseManifest(copy);
    };
    expect(check((m) => (m.files[0].path = '../etc/passwd'))).toThrow(
      /invalid file path "\.\.\/etc\/passwd"/,
    );
    expect(check((m) => (m.formatVersion = 2))).toThrow(/formatVersion 2 is not supported/);
    expect(check((m) => (m.tensors['embed_out.weight'].offset = 1e12))).toThrow(
      /tensor 'embed_out\.weight' lies outside weights\.bin/,
    );
    expect(check((m) => (m.graphs = { forward: 'other.onnx' }))).toThrow(
      /graph 'forward' file "other\.onnx" is not listed/,
    );
    expect(check((m) => m.files.push(m.files[0]))).toThrow(/config\.json listed twice/);
    expect(check((m) => (m.files[1].sha256 = 'abc'))).toThrow(/bad size or sha256/);

    await writeFile(join(dir, 'manifest.json'), '{');
    await expect(readManifest(dir)).rejects.toThrow(/manifest\.json: not valid JSON/);
    await rm(join(dir, 'manifest.json'));
    await expect(verifyManifest(dir)).rejects.toThrow(/manifest\.json: not found/);
  });
});
