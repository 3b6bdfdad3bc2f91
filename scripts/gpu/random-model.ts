// Random checkpoints of the model's real layout, written by several worker threads: the same
// file, byte for byte, that gpu-function/src/checkpoint/random.ts writes (each tensor has its
// own random stream, seeded by (seed, tensor index), so tensors can be drawn in any order and
// in parallel). A 7B-shaped float16 checkpoint is 14 GB: one thread needs about two minutes,
// the GPU machine's 16 cores a few seconds plus the writes.

import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, open, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { fillNormal, Xoshiro128 } from '../../gpu-function/src/checkpoint/normal-random.ts';
import { BASE_CONFIG, distributionOf } from '../../gpu-function/src/checkpoint/random.ts';
import { safetensorsLayout } from '../../gpu-function/src/checkpoint/safetensors-writer.ts';
import { elementCount } from '../../gpu-function/src/checkpoint/tensor-ref.ts';
import { convertElements } from '../../gpu-function/src/convert/dtype.ts';
import { expectedTensors, type ModelConfig, parseModelConfig } from '../../gpu-function/src/model/config.ts';

/** Model shapes the proof measures (config.json overrides of the 7B base config). */
export const MODEL_SHAPES: Record<string, Record<string, number>> = {
  /** Japanese-StableLM-Base-Alpha-7B: hidden 4096, 32 layers, 32 heads of 128; 7.0 B parameters. */
  '7b': {},
  /** ~1 B: 14 layers of 2048 (16 heads of 128), the real vocabulary (as bench:model). */
  '1b': { hidden_size: 2048, num_hidden_layers: 14, num_attention_heads: 16 },
  /** The demo model's shape: 256 wide, 2 layers, 2 heads of 128; 35 M parameters. */
  demo: { hidden_size: 256, num_hidden_layers: 2, num_attention_heads: 2 },
};

type Dtype = 'F32' | 'F16';
const CHUNK = 1 << 20;

interface Task {
  index: number;
  name: string;
  offset: number;
  elements: number;
}

function drawTasks(file: string, seed: number, dtype: Dtype, tasks: Task[]): void {
  const values = new Float32Array(CHUNK);
  const half = new Uint8Array(CHUNK * 2);
  const fd = openSync(file, 'r+');
  try {
    for (const t of tasks) {
      const rng = new Xoshiro128(seed, t.index);
      const { mean, std } = distributionOf(t.name);
      let position = t.offset;
      for (let start = 0; start < t.elements; start += CHUNK) {
        const chunk = values.subarray(0, Math.min(CHUNK, t.elements - start));
        fillNormal(rng, chunk, mean, std);
        const raw = new Uint8Array(chunk.buffer, 0, chunk.byteLength);
        const bytes =
          dtype === 'F32'
            ? raw
            : half.subarray(0, convertElements('F32', 'float16', raw, half, chunk.length));
        writeSync(fd, bytes, 0, bytes.length, position);
        position += bytes.length;
      }
    }
  } finally {
    closeSync(fd);
  }
}

if (!isMainThread && workerData?.randomModel) {
  const { file, seed, dtype, tasks } = workerData.randomModel as {
    file: string;
    seed: number;
    dtype: Dtype;
    tasks: Task[];
  };
  drawTasks(file, seed, dtype, tasks);
  parentPort?.postMessage('done');
}

export interface ParallelCheckpoint {
  dir: string;
  config: ModelConfig;
  parameters: number;
  bytes: number;
  ms: number;
}

export async function writeRandomCheckpointParallel(o: {
  dir: string;
  config?: Record<string, unknown>;
  seed?: number;
  dtype?: Dtype;
  threads?: number;
}): Promise<ParallelCheckpoint> {
  const t0 = performance.now();
  const dtype = o.dtype ?? 'F16';
  const seed = o.seed ?? 0;
  const raw = { ...BASE_CONFIG, ...o.config, torch_dtype: dtype === 'F16' ? 'float16' : 'float32' };
  const config = parseModelConfig(raw);
  const entries = [...expectedTensors(config)].map(([name, shape]) => ({ name, dtype, shape }));
  const layout = safetensorsLayout(entries);
  await mkdir(o.dir, { recursive: true });
  await writeFile(join(o.dir, 'config.json'), `${JSON.stringify(raw, null, 2)}\n`);
  const file = join(o.dir, 'model.safetensors');
  const fh = await open(file, 'w');
  try {
    await fh.write(layout.header, 0, layout.header.length, 0);
    await fh.truncate(layout.fileSize);
  } finally {
    await fh.close();
  }
  // Largest tensors first, each to the least loaded thread.
  const threads = Math.max(1, o.threads ?? os.availableParallelism());
  const tasks: Task[] = entries.map((e, index) => ({
    index,
    name: e.name,
    offset: layout.offsets[index] as number,
    elements: elementCount(e.shape),
  }));
  const shares = Array.from({ length: threads }, () => ({ load: 0, tasks: [] as Task[] }));
  for (const t of [...tasks].sort((a, b) => b.elements - a.elements)) {
    const least = shares.reduce((a, b) => (b.load < a.load ? b : a));
    least.tasks.push(t);
    least.load += t.elements;
  }
  await Promise.all(
    shares
      .filter((s) => s.tasks.length > 0)
      .map(
        (s) =>
          new Promise<void>((resolve, reject) => {
            const w = new Worker(new URL(import.meta.url), {
              workerData: { randomModel: { file, seed, dtype, tasks: s.tasks } },
            });
            w.once('message', () => resolve());
            w.once('error', reject);
            w.once('exit', (code) =>
              code === 0 ? resolve() : reject(new Error(`worker exited with ${code}`)),
            );
          }),
      ),
  );
  const parameters = tasks.reduce((a, t) => a + t.elements, 0);
  return {
    dir: o.dir,
    config,
    parameters,
    bytes: layout.fileSize,
    ms: performance.now() - t0,
  };
}
