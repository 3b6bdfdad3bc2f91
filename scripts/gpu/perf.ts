// Speed of the engine on a random model of a real shape: prefill and decode tokens/s, time to
// first token, bytes across the host/runtime boundary per token, GPU memory, and concurrent
// requests (the batched engine serves them in one batch). Every figure comes from the
// engine's own run reports and results, not from timing around it.

import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Xoshiro128 } from '../../gpu-function/src/checkpoint/normal-random.ts';
import { elementCount } from '../../gpu-function/src/checkpoint/tensor-ref.ts';
import { convertCheckpoint } from '../../gpu-function/src/convert/convert.ts';
import { expectedTensors, kvBytesPerTokenOf } from '../../gpu-function/src/model/config.ts';
import type { QuantizedDtype } from '../../gpu-function/src/model/quantized-linear.ts';
import { type EngineHandle, openEngine, type Provider, type RunRecord } from './engine-usage.ts';
import { type GpuMemory, gpuMemory } from './gpu-memory.ts';
import { MODEL_SHAPES, writeRandomCheckpointParallel } from './random-model.ts';

export interface PerfOptions {
  provider: Provider;
  shape: string;
  dtype: 'float32' | 'float16';
  quantize?: QuantizedDtype;
  workDir: string;
  concurrency: number[];
  /** performance.now() after which no new stage starts (results so far are kept). */
  deadline: number;
  /** Called after every stage with the results so far (written to disk at once). */
  progress(r: PerfResult): Promise<void>;
}

export interface PerfResult {
  model: Record<string, unknown>;
  prepare: Record<string, number>;
  open?: { ms: number; createMs: number; provider: string; dtype: string };
  memory: Record<string, GpuMemory | null>;
  prefill: {
    promptTokens: number;
    prefillTokens: number;
    ms: number;
    tokensPerS: number;
    firstTokenMs: number;
  }[];
  decode: {
    context: number;
    tokens: number;
    tokensPerS: number;
    msPerStep: number;
    firstTokenMs: number;
    boundaryBytesPerToken: number;
    chunkSizes: number[];
  }[];
  concurrent: {
    requests: number;
    wallMs: number;
    tokens: number;
    tokensPerS: number;
    decodeTokensPerS: number;
    maxBatch: number;
    firstTokenMs: { mean: number; max: number };
    boundaryBytesPerToken: number;
  }[];
  skipped: string[];
  error?: string;
}

function randomPrompt(n: number, vocab: number, seed: number): number[] {
  const rng = new Xoshiro128(seed, 99);
  return Array.from({ length: n }, () => 4 + (rng.next() % (vocab - 4)));
}

const sum = (runs: RunRecord[], kind: RunRecord['kind'], key: 'tokens' | 'ms' | 'steps') =>
  runs.filter((r) => r.kind === kind).reduce((a, r) => a + r[key], 0);

async function prepareModel(o: PerfOptions, result: PerfResult): Promise<string> {
  const base = path.join(o.workDir, `perf-${o.shape}`);
  const checkpoint = path.join(base, `checkpoint-${o.dtype}`);
  const shape = MODEL_SHAPES[o.shape];
  if (!shape) throw new Error(`unknown model shape '${o.shape}' (${Object.keys(MODEL_SHAPES).join(', ')})`);
  if (!existsSync(path.join(checkpoint, 'model.safetensors'))) {
    const ck = await writeRandomCheckpointParallel({
      dir: checkpoint,
      config: shape,
      seed: 1,
      dtype: o.dtype === 'float16' ? 'F16' : 'F32',
    });
    result.prepare.checkpointMs = ck.ms;
  }
  const modelDir = path.join(base, o.quantize ? `${o.dtype}-${o.quantize}` : o.dtype);
  const t0 = performance.now();
  const converted = await convertCheckpoint({
    checkpointDir: checkpoint,
    outDir: modelDir,
    dtype: o.dtype,
    overwrite: true,
    ...(o.quantize ? { quantize: { dtype: o.quantize } } : {}),
  });
  result.prepare.convertMs = performance.now() - t0;
  const c = converted.manifest.config;
  const weightBytes = Object.values(converted.manifest.tensors).reduce((a, t) => a + t.length, 0);
  const embedIn = converted.manifest.tensors['transformer.embed_in.weight']?.length ?? 0;
  Object.assign(result.model, {
    shape: o.shape,
    dtype: o.dtype,
    quantize: o.quantize ?? null,
    layers: c.numLayers,
    hidden: c.hiddenSize,
    heads: c.numHeads,
    vocab: c.vocabSize,
    maxPositions: c.maxPositions,
    parameters: [...expectedTensors(c).values()].reduce((a, s) => a + elementCount(s), 0),
    weightBytes,
    // A decode step reads every weight but the input embedding, of which it gathers a row.
    weightBytesReadPerStep: weightBytes - embedIn,
    kvBytesPerToken: kvBytesPerTokenOf(c, o.dtype === 'float16' ? 'float16' : 'float32'),
  });
  return modelDir;
}

async function stage(o: PerfOptions, r: PerfResult, name: string, body: () => Promise<void>): Promise<void> {
  if (performance.now() > o.deadline) {
    r.skipped.push(`${name} (time budget spent)`);
    return;
  }
  await body();
  r.memory[name] = await gpuMemory();
  await o.progress(r);
}

async function measure(o: PerfOptions, e: EngineHandle, r: PerfResult, vocab: number, maxPositions: number) {
  await stage(o, r, 'warm-up', async () => {
    await e.generate({ promptIds: randomPrompt(16, vocab, 1), maxNewTokens: 8, temperature: 1, seed: 1 });
  });
  for (const P of [128, 1024].filter((p) => p < maxPositions)) {
    await stage(o, r, `prefill ${P}`, async () => {
      e.clearRuns();
      const g = await e.generate({
        promptIds: randomPrompt(P, vocab, P),
        maxNewTokens: 1,
        temperature: 1,
        seed: 2,
      });
      const tokens = sum(e.runs, 'prefill', 'tokens');
      const ms = sum(e.runs, 'prefill', 'ms');
      r.prefill.push({
        promptTokens: P,
        prefillTokens: tokens,
        ms,
        tokensPerS: tokens / (ms / 1000),
        firstTokenMs: g.firstTokenMs,
      });
    });
  }
  // Sampling at temperature 1 so the length does not depend on the random weights' argmax.
  for (const [context, tokens] of [
    [128, 128],
    [1024, 64],
  ] as const) {
    if (context + tokens > maxPositions) continue;
    await stage(o, r, `decode ${context}`, async () => {
      e.clearRuns();
      const g = await e.generate({
        promptIds: randomPrompt(context, vocab, 7),
        maxNewTokens: tokens,
        temperature: 1,
        seed: 3,
      });
      const t = sum(e.runs, 'decode', 'tokens');
      const ms = sum(e.runs, 'decode', 'ms');
      r.decode.push({
        context,
        tokens: t,
        tokensPerS: t / (ms / 1000),
        msPerStep: ms / Math.max(1, sum(e.runs, 'decode', 'steps')),
        firstTokenMs: g.firstTokenMs,
        boundaryBytesPerToken: g.boundaryBytesPerToken,
        chunkSizes: g.chunkSizes,
      });
    });
  }
  for (const n of o.concurrency) {
    await stage(o, r, `concurrent ${n}`, async () => {
      e.clearRuns();
      const t0 = performance.now();
      const all = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          e.generate({
            promptIds: randomPrompt(128, vocab, 100 + i),
            maxNewTokens: 64,
            temperature: 1,
            seed: 10 + i,
          }),
        ),
      );
      const wallMs = performance.now() - t0;
      const tokens = all.reduce((a, g) => a + g.completionTokens, 0);
      const ttft = all.map((g) => g.firstTokenMs);
      const bytes = e.runs.reduce((a, x) => a + x.boundaryBytes, 0);
      r.concurrent.push({
        requests: n,
        wallMs,
        tokens,
        tokensPerS: tokens / (wallMs / 1000),
        decodeTokensPerS: sum(e.runs, 'decode', 'tokens') / (sum(e.runs, 'decode', 'ms') / 1000),
        maxBatch: Math.max(0, ...e.runs.map((x) => x.batch)),
        firstTokenMs: { mean: ttft.reduce((a, b) => a + b, 0) / n, max: Math.max(...ttft) },
        boundaryBytesPerToken: bytes / Math.max(1, tokens),
      });
    });
  }
}

export async function runPerf(o: PerfOptions): Promise<PerfResult> {
  const r: PerfResult = {
    model: {},
    prepare: {},
    memory: {},
    prefill: [],
    decode: [],
    concurrent: [],
    skipped: [],
  };
  let engine: EngineHandle | undefined;
  try {
    r.memory.before = await gpuMemory();
    const modelDir = await prepareModel(o, r);
    await o.progress(r);
    const t0 = performance.now();
    engine = await openEngine(modelDir, o.provider);
    r.open = {
      ms: performance.now() - t0,
      createMs: engine.createMs,
      provider: engine.provider,
      dtype: engine.dtype,
    };
    r.memory.open = await gpuMemory();
    await o.progress(r);
    await measure(o, engine, r, Number(r.model.vocab), Number(r.model.maxPositions));
  } catch (err) {
    r.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
  } finally {
    await engine?.close();
    // The converted folder links the checkpoint's file: only the checkpoint's bytes are on disk.
    if (o.quantize)
      await rm(path.join(o.workDir, `perf-${o.shape}`, `${o.dtype}-${o.quantize}`), {
        recursive: true,
        force: true,
      });
  }
  await o.progress(r);
  return r;
}
