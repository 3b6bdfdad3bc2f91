// A converted folder holds config, weights and manifest; the graphs are built from it when it
// is opened. Folders converted before that (with model.onnx / forward.onnx listed in their
// manifest) keep working: their old graphs are ignored and still verify.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { GenerationEngine } from '../../../gpu-function/src/engine/engine.ts';
import { GRAPH_FILE } from '../../../gpu-function/src/model-folder/graphs.ts';
import { MANIFEST_FILE, verifyManifest } from '../../../gpu-function/src/model-folder/manifest.ts';
import { FIXTURES, fixtureModelDir, readGolden, removeDir } from './fixture-model.ts';

async function greedy(dir: string, promptIds: number[]): Promise<number[]> {
  const engine = await GenerationEngine.open(dir, { intraOpNumThreads: 1 });
  try {
    const ids: number[] = [];
    for await (const c of engine.generate({ promptIds, maxNewTokens: 20, temperature: 0 }))
      ids.push(...c.ids);
    return ids;
  } finally {
    await engine.close();
  }
}

describe.skipIf(!existsSync(FIXTURES))('model folders', () => {
  it('a new folder has no graph until it is opened; opening builds it beside the weights', async () => {
    const dir = await fixtureModelDir('tiny-seed1234', 'float32');
    try {
      expect((await readdir(dir)).sort()).toEqual(['config.json', MANIFEST_FILE, 'model.safetensors']);
      const golden = await readGolden('tiny-seed1234');
      expect(await greedy(dir, golden.greedy.prompt_ids)).toEqual(golden.greedy.new_tokens);
      expect(await readdir(dir)).toContain(GRAPH_FILE.generate);
      await verifyManifest(dir); // the built graph is not part of the folder's contract
    } finally {
      await removeDir(dir);
    }
  });

  it('a folder converted with graphs inside (older converter) still serves', async () => {
    const dir = await fixtureModelDir('tiny-seed1234', 'float32');
    try {
      const manifestPath = path.join(dir, MANIFEST_FILE);
      const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
      for (const file of ['forward.onnx', 'model.onnx']) {
        const bytes = Buffer.from(`an older graph (${file})`);
        await writeFile(path.join(dir, file), bytes);
        manifest.files.push({
          path: file,
          size: bytes.length,
          sha256: createHash('sha256').update(bytes).digest('hex'),
        });
      }
      manifest.graphs = { forward: 'forward.onnx', generate: 'model.onnx' };
      await writeFile(manifestPath, JSON.stringify(manifest));
      await verifyManifest(dir);
      const golden = await readGolden('tiny-seed1234');
      expect(await greedy(dir, golden.greedy.prompt_ids)).toEqual(golden.greedy.new_tokens);
      await verifyManifest(dir);
    } finally {
      await removeDir(dir);
    }
  });
});
