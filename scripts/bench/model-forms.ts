// bench:model's comparison of weight forms: the same random checkpoint converted to float32, int8
// and int4 (blocks of 32), each served by the generation engine in turn, with decode and
// prefill tokens/s next to that form's own bandwidth bound (bytes read per decoded token /
// measured copy bandwidth). And the 7B-shaped run (`--7b`): a random checkpoint of the real
// 7B shape (16-bit, made once) converted to int4, for the session time, resident memory and
// decode speed the real model would have in that form on this machine.

import { existsSync, readFileSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { writeRandomCheckpoint } from '../../gpu-function/src/checkpoint/random.ts';
import { convertCheckpoint } from '../../gpu-function/src/convert/convert.ts';
import { GenerationEngine, type GenerationResult } from '../../gpu-function/src/engine/engine.ts';
import { Xoshiro128 } from '../../gpu-function/src/engine/prng.ts';
import type { QuantizedDtype } from '../../gpu-function/src/model/quantized-linear.ts';
import { MANIFEST_FILE, type Manifest, readManifest } from '../../gpu-function/src/model-folder/manifest.ts';

export type WeightsForm = 'float32' | QuantizedDtype;
export const FORMS: readonly WeightsForm[] = ['float32', 'int8', 'int4'];

const GiB = 1024 ** 3;
const fmt = (x: number, digits = 1) => x.toFixed(digits);

/** Converts `checkpoint` to `form` under `root/<form>` unless it is there already; returns the folder. */
export async function convertedForm(checkpoint: string, root: string, form: WeightsForm): Promise<string> {
  const dir = path.join(root, form);
  if (existsSync(path.join(dir, MANIFEST_FILE))) return dir;
  process.stderr.write(`converting to ${form} (once)...\n`);
  const t0 = performance.now();
  await convertCheckpoint({
    checkpointDir: checkpoint,
    outDir: dir,
    dtype: 'float32',
    ...(form === 'float32' ? {} : { quantize: { dtype: form } }),
  });
  process.stderr.write(`  ${fmt((performance.now() - t0) / 1000, 0)} s\n`);
  return dir;
}

/** Weight bytes a decode step reads: every tensor as stored (codes and scales), except the
 * input embedding, of which it gathers one row. */
export function bytesPerToken(manifest: Manifest): number {
  let total = 0;
  for (const [name, t] of Object.entries(manifest.tensors)) {
    if (name === 'transformer.embed_in.weight') continue;
    total += t.length + (t.quantization?.scales.length ?? 0);
  }
  return total;
}

export function folderBytes(manifest: Manifest): number {
  return manifest.files.reduce((a, f) => a + f.size, 0);
}

export function randomPrompt(n: number, seed: number): number[] {
  const rng = new Xoshiro128(seed);
  return Array.from({ length: n }, () => 4 + (rng.nextUint32() % 60000));
}

async function generate(
  engine: GenerationEngine,
  promptIds: number[],
  maxNewTokens: number,
  maxChunk: number,
): Promise<GenerationResult> {
  // Sampling at temperature 1: the streamed length must not depend on the random weights.
  const stream = engine.generate({ promptIds, maxNewTokens, temperature: 1, seed: 7 }, { maxChunk });
  for await (const _ of stream);
  return stream.result;
}

/**
 * This process's memory from /proc (NaN where it is missing): peak resident (VmHWM), and the
 * resident split into anonymous memory (what the process owns) and file pages (memory-mapped
 * weights: shared with the page cache, dropped first under memory pressure).
 */
export function memoryStatus(): { peak: number; anon: number; file: number } {
  let text = '';
  try {
    text = readFileSync('/proc/self/status', 'utf8');
  } catch {}
  const field = (name: string) => {
    const kb = new RegExp(`${name}:\\s+(\\d+) kB`).exec(text)?.[1];
    return kb ? Number(kb) * 1024 : Number.NaN;
  };
  return { peak: field('VmHWM'), anon: field('RssAnon'), file: field('RssFile') };
}

export interface FormFigures {
  form: WeightsForm;
  createMs: number;
  /** Resident memory after opening and after generating (whole process). */
  rssOpen: number;
  rssAfter: number;
  /** memoryStatus() after generating. */
  memory: ReturnType<typeof memoryStatus>;
  /** Largest anonymous resident memory seen while the session was created (sampled every 50 ms). */
  peakAnonOpen: number;
  prefillRate: number;
  /** Every round's decode rate, in order. */
  decodeRates: number[];
}

/**
 * Opens `dir` in a fresh engine, then: a warm-up; prefill of a `prefill`-token prompt (one
 * run); decode, best of `rounds`, of `steps` tokens in one run after the prompt's own.
 */
export async function measureForm(
  dir: string,
  form: WeightsForm,
  o: { threads: number; prefill: number; steps: number; rounds: number },
): Promise<FormFigures> {
  // The session is created in the engine's worker thread, so this thread can watch meanwhile.
  let peakAnonOpen = memoryStatus().anon;
  const sampler = setInterval(() => {
    peakAnonOpen = Math.max(peakAnonOpen, memoryStatus().anon);
  }, 50);
  const engine = await GenerationEngine.open(dir, { intraOpNumThreads: o.threads, provider: 'cpu' }).finally(
    () => clearInterval(sampler),
  );
  const rssOpen = process.memoryUsage().rss;
  try {
    await generate(engine, randomPrompt(8, 1), 2, 2);
    const prefill = await generate(engine, randomPrompt(o.prefill, 2), 1, 1);
    // The prefill run holds all but the last prompt token (that one starts decoding).
    const prefillRate = (o.prefill - 1) / (prefill.timings.prefillMs / 1000);
    const decodeRates: number[] = [];
    for (let i = 0; i < o.rounds; i++) {
      const run = await generate(engine, randomPrompt(o.prefill, 3 + i), o.steps + 1, o.steps);
      decodeRates.push((o.steps + 1) / (run.timings.decodeMs / 1000));
    }
    return {
      form,
      createMs: engine.info.createMs,
      rssOpen,
      rssAfter: process.memoryUsage().rss,
      memory: memoryStatus(),
      peakAnonOpen,
      prefillRate,
      decodeRates,
    };
  } finally {
    await engine.close();
  }
}

export interface OpenForm {
  form: WeightsForm;
  engine: GenerationEngine;
  manifest: Manifest;
}

export interface FormRates {
  form: WeightsForm;
  decode: number[];
  prefill: number[];
  manifest: Manifest;
  createMs: number;
}

/**
 * Decode (`steps` tokens after the prompt's first, chunks of up to `steps`) and prefill
 * (`prefill`-token prompts) rates of every form, the forms taking turns within each round so
 * that a machine shared with other work slows them alike: their ratios are what matters.
 */
export async function compareForms(
  forms: OpenForm[],
  o: { prefill: number; steps: number; rounds: number },
): Promise<FormRates[]> {
  const rates = forms.map((f) => ({
    form: f.form,
    decode: [] as number[],
    prefill: [] as number[],
    manifest: f.manifest,
    createMs: f.engine.info.createMs,
  }));
  for (const f of forms) await generate(f.engine, randomPrompt(8, 1), 2, 2); // warm-up
  for (let round = 0; round < o.rounds; round++) {
    for (const [i, f] of forms.entries()) {
      const prefill = await generate(f.engine, randomPrompt(o.prefill, 100 + round), 1, 1);
      // The prefill run holds all but the last prompt token (that one starts decoding).
      rates[i]!.prefill.push((o.prefill - 1) / (prefill.timings.prefillMs / 1000));
      const run = await generate(f.engine, randomPrompt(o.prefill, 200 + round), o.steps + 1, o.steps);
      rates[i]!.decode.push((o.steps + 1) / (run.timings.decodeMs / 1000));
    }
  }
  return rates;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Memory read throughput in bytes per second: memcmp of two equal 512 MiB buffers (which only
 * reads), split over `threads` worker threads, best of 4 after a warm-up. Decoding reads weights
 * and writes little, so this is the rate its bound divides by; a copy's rate is about half.
 */
export async function readBandwidth(threads: number): Promise<number> {
  const size = GiB;
  const code = `
    const { parentPort, workerData: { bytes } } = require('node:worker_threads');
    const a = Buffer.alloc(bytes / 2, 1), b = Buffer.alloc(bytes / 2, 1);
    parentPort.on('message', () => { a.equals(b); parentPort.postMessage(0); });`;
  const workers = Array.from(
    { length: threads },
    () => new Worker(code, { eval: true, workerData: { bytes: size / threads } }),
  );
  let best = 0;
  try {
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await Promise.all(
        workers.map((w) => new Promise<void>((resolve) => w.once('message', () => resolve()).postMessage(0))),
      );
      if (i > 0) best = Math.max(best, size / ((performance.now() - t0) / 1000));
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return best;
}

/** The table of forms, each next to its bound; bandwidth in bytes read per second. */
export function printForms(rows: FormRates[], bandwidth: number): void {
  console.log(
    '\nweights  folder     read/token  bound tok/s  decode tok/s (median, best)  best/bound  prefill tok/s (median)  session',
  );
  for (const r of rows) {
    const perToken = bytesPerToken(r.manifest);
    const bound = bandwidth / perToken;
    const decode = median(r.decode);
    const best = Math.max(...r.decode);
    console.log(
      `${r.form.padEnd(7)}  ${`${fmt(folderBytes(r.manifest) / GiB, 2)} GiB`.padStart(9)}  ` +
        `${`${fmt(perToken / GiB, 2)} GiB`.padStart(10)}  ${fmt(bound, 2).padStart(11)}  ` +
        `${`${fmt(decode, 2)}, ${fmt(best, 2)}`.padStart(28)}  ` +
        `${`${fmt((100 * best) / bound, 0)}%`.padStart(10)}  ${fmt(median(r.prefill), 1).padStart(22)}  ` +
        `${`${fmt(r.createMs / 1000, 1)} s`.padStart(7)}`,
    );
  }
  const rate = (form: WeightsForm, key: 'decode' | 'prefill') => {
    const row = rows.find((r) => r.form === form);
    return row ? median(row[key]) : Number.NaN;
  };
  const best = (form: WeightsForm) =>
    Math.max(...(rows.find((r) => r.form === form)?.decode ?? [Number.NaN]));
  const vs = (key: 'decode' | 'prefill') =>
    `int8 ${fmt(rate('int8', key) / rate('float32', key), 2)}x, int4 ${fmt(rate('int4', key) / rate('float32', key), 2)}x`;
  console.log(
    `decode vs float32: medians ${vs('decode')}, best rounds int8 ${fmt(best('int8') / best('float32'), 2)}x, ` +
      `int4 ${fmt(best('int4') / best('float32'), 2)}x (target: int4 >= 3x); prefill (medians): ${vs('prefill')}`,
  );
}

/** The 7B shape: the real config (hidden 4096, 32 layers, 32 heads, vocabulary 65,536). */
export async function prepare7b(root: string, form: QuantizedDtype): Promise<string> {
  const checkpoint = path.join(root, 'checkpoint');
  if (!existsSync(path.join(checkpoint, 'model.safetensors'))) {
    process.stderr.write('writing a random 7B-shaped float16 checkpoint (once, 14 GB)...\n');
    const partial = `${checkpoint}.partial`;
    await rm(partial, { recursive: true, force: true });
    const t0 = performance.now();
    await writeRandomCheckpoint({ dir: partial, config: {}, seed: 1, dtype: 'F16' });
    await rename(partial, checkpoint);
    process.stderr.write(`  ${fmt((performance.now() - t0) / 1000, 0)} s\n`);
  }
  return convertedForm(checkpoint, root, form);
}

export async function bench7b(
  root: string,
  form: QuantizedDtype,
  threads: number,
  bandwidth: () => Promise<number>,
): Promise<void> {
  const dir = await prepare7b(root, form);
  const manifest = await readManifest(dir);
  const params = Object.values(manifest.tensors).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  console.log(
    `\n7B-shaped model (random weights): ${fmt(params / 1e9, 2)} B parameters, ${form} in blocks of 32, ` +
      `folder ${fmt(folderBytes(manifest) / GiB, 2)} GiB`,
  );
  const rss0 = process.memoryUsage().rss;
  const rounds = 4;
  const f = await measureForm(dir, form, { threads, prefill: 32, steps: 16, rounds });
  // The targets are the int4 form's.
  const target = (text: string) => (form === 'int4' ? ` (target ${text})` : '');
  const m = f.memory;
  console.log(
    `session: created in ${fmt(f.createMs / 1000, 1)} s; resident memory ${fmt(f.rssOpen / GiB, 2)} GiB open ` +
      `(+${fmt((f.rssOpen - rss0) / GiB, 2)}), ${fmt(f.rssAfter / GiB, 2)} GiB after generating ` +
      `(${fmt(m.anon / GiB, 2)} GiB anonymous + ${fmt(m.file / GiB, 2)} GiB mapped file pages), ` +
      `peak ${fmt(m.peak / GiB, 2)} GiB (anonymous ${fmt(f.peakAnonOpen / GiB, 2)} GiB) while the session ` +
      `was created${target('<= 6 GiB')}`,
  );
  // Measured after the memory figures: its buffers would count in the peak.
  const bw = await bandwidth();
  const perToken = bytesPerToken(manifest);
  console.log(
    `decode:  ${fmt(median(f.decodeRates), 2)} tokens/s median, ${fmt(Math.max(...f.decodeRates), 2)} best ` +
      `(${rounds} x 17 tokens)${target('>= 2')}; ` +
      `${fmt(perToken / GiB, 2)} GiB read per token at ${fmt(bw / GiB, 2)} GiB/s read (memcmp): ` +
      `bound ${fmt(bw / perToken, 2)} tokens/s`,
  );
  console.log(`prefill: ${fmt(f.prefillRate, 1)} tokens/s (32-token prompt)`);
}
