// The model `npm start` serves when no real checkpoint is configured: the real architecture and
// the real 65,536-token vocabulary, but narrow, shallow and with deterministic random weights
// (made here, nothing is downloaded). It answers in gibberish, fast, on two CPU cores.
// Head size 128 and rotary 32 are the 7B's, so the same attention paths run.
import path from 'node:path';
import { writeRandomCheckpoint } from '../../../gpu-function/src/checkpoint/random.ts';
import { convertCheckpoint } from '../../../gpu-function/src/convert/convert.ts';
import type { QuantizedDtype } from '../../../gpu-function/src/model/quantized-linear.ts';

export const DEMO_MODEL = {
  config: { hidden_size: 256, num_hidden_layers: 2, num_attention_heads: 2 },
  seed: 7,
} as const;

export const DEMO_LABEL =
  'demo model: the real architecture and vocabulary with random weights (hidden 256, 2 layers); it produces gibberish';

/**
 * Writes the demo checkpoint and converts it (float32, or with int8/int4 linear layers);
 * returns the converted folder (under `workDir`).
 */
export async function buildDemoModel(
  workDir: string,
  quantize?: QuantizedDtype,
): Promise<{ dir: string; parameters: number }> {
  const checkpoint = await writeRandomCheckpoint({
    dir: path.join(workDir, 'checkpoint'),
    config: { ...DEMO_MODEL.config },
    seed: DEMO_MODEL.seed,
    dtype: 'F32',
  });
  const outDir = path.join(workDir, 'model');
  await convertCheckpoint({
    checkpointDir: checkpoint.dir,
    outDir,
    dtype: 'float32',
    ...(quantize ? { quantize: { dtype: quantize } } : {}),
  });
  return { dir: outDir, parameters: checkpoint.parameters };
}
