// The ~1B-parameter random model the benchmarks share: the real layout and vocabulary, 14
// layers of width 2048 (16 heads of 128), written and converted once under .cache/.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { writeRandomCheckpoint } from '../../../gpu-function/src/checkpoint/random.ts';
import { convertCheckpoint } from '../../../gpu-function/src/convert/convert.ts';
import { MANIFEST_FILE } from '../../../gpu-function/src/model-folder/manifest.ts';

export const BENCH_MODEL_CONFIG = { hidden_size: 2048, num_hidden_layers: 14, num_attention_heads: 16 };
export const BENCH_MODEL_ROOT = path.resolve('.cache/bench-model');
export const BENCH_CHECKPOINT = path.join(BENCH_MODEL_ROOT, 'checkpoint');

/** Writes the checkpoint and its float32 conversion when missing; returns the converted folder. */
export async function prepareBenchModel(): Promise<string> {
  const converted = path.join(BENCH_MODEL_ROOT, 'float32');
  if (!existsSync(path.join(BENCH_CHECKPOINT, 'model.safetensors'))) {
    process.stderr.write('writing a random ~1B-parameter checkpoint (once)...\n');
    const ckpt = await writeRandomCheckpoint({
      dir: BENCH_CHECKPOINT,
      config: BENCH_MODEL_CONFIG,
      seed: 1,
      dtype: 'F32',
    });
    process.stderr.write(`  ${(ckpt.parameters / 1e9).toFixed(3)} B parameters\n`);
  }
  if (!existsSync(path.join(converted, MANIFEST_FILE))) {
    process.stderr.write('converting (once)...\n');
    await convertCheckpoint({ checkpointDir: BENCH_CHECKPOINT, outDir: converted, dtype: 'float32' });
  }
  return converted;
}
