// `npm run bench:model`: the generation engine on a random ~1B-parameter model with the real
// layout (vocabulary 65,536, head size 128, rotary 32), on the CPU. Prints:
//   - float32: decode and prefill tokens/s next to the memory-bandwidth bound measured in the
//     same run (weight bytes read per decoded token / measured copy bandwidth), and their ratio;
//   - bytes crossing the host/runtime boundary per generated token at contexts 128 and 1024,
//     chunked (chunks timed to CHUNK_TARGET_MS, cache handed back only at chunk ends) against the naive
//     one-run-per-token design (the same graph run one token at a time);
//   - session creation time and resident memory;
//   - the same checkpoint as int8 and int4 (blocks of 32): decode and prefill tokens/s each
//     next to its own bound, against float32 (model-forms.ts).
// The checkpoint and its converted folders are cached under .cache/bench-model/.
//
// `npm run bench:model -- --7b` measures instead a random model of the real 7B shape as int4
// and int8 (each in a fresh process, so its memory is its own): session creation time,
// resident memory and decode tokens/s. It is kept out of the default run: the first run writes
// a 14 GB checkpoint and converts it (about 5 + 5 + 5 minutes on this project's machine),
// later runs take about 2 minutes per form.
//
// Options: --threads N (default: all cores), --tokens N (streamed tokens per context, default 128),
//          --skip-long (leave out context 1024), --no-prepack (float32 weights left memory-mapped),
//          --7b.

import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { GenerationEngine, type GenerationResult } from '../../gpu-function/src/engine/engine.ts';
import { expectedTensors, kvBytesPerTokenOf, parseModelConfig } from '../../gpu-function/src/model/config.ts';
import { readManifest } from '../../gpu-function/src/model-folder/manifest.ts';
import { BENCH_CHECKPOINT, BENCH_MODEL_ROOT, prepareBenchModel } from './lib/bench-model.ts';
import {
  bench7b,
  bytesPerToken,
  compareForms,
  convertedForm,
  type FormRates,
  type OpenForm,
  printForms,
  randomPrompt,
  readBandwidth,
} from './model-forms.ts';

const ROOT = BENCH_MODEL_ROOT;
const CHECKPOINT = BENCH_CHECKPOINT;
const ROOT_7B = path.resolve('.cache/bench-model-7b');

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const fmt = (x: number, digits = 1) => x.toFixed(digits);

/**
 * memcpy throughput over 1 GiB with `threads` threads, in bytes copied per second (best of 3
 * after a warm-up). The buffers live in the worker threads, so they are gone (and out of the
 * resident-memory figures) once the workers end.
 */
async function copyBandwidth(threads: number): Promise<number> {
  const size = GiB;
  const code = `
    const { parentPort, workerData: { bytes } } = require('node:worker_threads');
    const a = Buffer.alloc(bytes, 1), b = Buffer.alloc(bytes, 2);
    parentPort.on('message', () => { a.copy(b); parentPort.postMessage(0); });`;
  const workers = Array.from(
    { length: threads },
    () => new Worker(code, { eval: true, workerData: { bytes: size / threads } }),
  );
  const round = () =>
    Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once('message', () => resolve());
            w.postMessage(0);
          }),
      ),
    );
  let best = 0;
  for (let i = 0; i < 4; i++) {
    const t0 = performance.now();
    await round();
    const s = (performance.now() - t0) / 1000;
    if (i > 0) best = Math.max(best, size / s);
  }
  await Promise.all(workers.map((w) => w.terminate()));
  return best;
}

async function generate(
  engine: GenerationEngine,
  promptIds: number[],
  maxNewTokens: number,
  /** Cap on chunk steps (1: one run per token); unset: chunks timed to the engine's target. */
  maxChunk?: number,
): Promise<GenerationResult> {
  // Sampling at temperature 1: the streamed length must not depend on the random weights.
  const stream = engine.generate(
    { promptIds, maxNewTokens, temperature: 1, seed: 7 },
    maxChunk ? { maxChunk } : {},
  );
  for await (const _ of stream);
  return stream.result;
}

async function main(): Promise<void> {
  let bandwidthSeen: number;
  let rows: FormRates[];
  const { values } = parseArgs({
    options: {
      threads: { type: 'string' },
      tokens: { type: 'string', default: '128' },
      'skip-long': { type: 'boolean', default: false },
      'no-prepack': { type: 'boolean', default: false },
      '7b': { type: 'boolean', default: false },
      '7b-form': { type: 'string' },
    },
  });
  const prepack = !values['no-prepack'];
  const threads = values.threads ? Number(values.threads) : os.availableParallelism();
  const bandwidth = async () => Math.max(await copyBandwidth(1), await copyBandwidth(Math.max(1, threads)));
  const form7b = values['7b-form'];
  if (form7b === 'int4' || form7b === 'int8')
    return bench7b(ROOT_7B, form7b, threads, async () =>
      Math.max(await readBandwidth(1), await readBandwidth(threads)),
    );
  if (values['7b']) return run7b(threads);
  const streamed = Number(values.tokens);
  const CONVERTED = await prepareBenchModel();
  const manifest = await readManifest(CONVERTED);
  const c = manifest.config;
  const tensors = Object.entries(manifest.tensors);
  const parameters = tensors.reduce((a, [, t]) => a + t.length / 4, 0);
  // A decode step reads every weight except the embedding table, of which it gathers one row.
  const weightBytesPerToken = bytesPerToken(manifest);
  const kvBytesPerToken = kvBytesPerTokenOf(c, 'float32');

  console.log(
    `model: ${(parameters / 1e9).toFixed(3)} B parameters, ${c.numLayers} layers, hidden ${c.hiddenSize},`,
  );
  console.log(`       ${c.numHeads} heads of ${c.headSize}, vocabulary ${c.vocabSize}, float32 weights`);
  console.log(
    `cpu: ${os.cpus()[0]?.model ?? '?'} x ${os.availableParallelism()}, intra-op threads ${threads}`,
  );

  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const engine = await GenerationEngine.open(CONVERTED, {
    intraOpNumThreads: threads,
    provider: 'cpu',
    prepack,
  });
  const openMs = performance.now() - t0;
  const rss1 = process.memoryUsage().rss;
  console.log(
    `\nsession: created in ${fmt(engine.info.createMs, 0)} ms (engine with worker ${fmt(openMs, 0)} ms),`,
  );
  console.log(`         provider ${engine.provider}, weight prepacking ${prepack ? 'on' : 'off'},`);
  console.log(`         resident memory ${fmt(rss1 / GiB, 2)} GiB (+${fmt((rss1 - rss0) / GiB, 2)} GiB)`);

  try {
    // Warm-up, then prefill: 128 prompt tokens and one sampled token in one run.
    await generate(engine, randomPrompt(8, 1), 2, 2);
    const prefill = await generate(engine, randomPrompt(128, 2), 1, 1);
    // The prefill run holds all but the last prompt token (that one starts decoding).
    const prefillRate = 127 / (prefill.timings.prefillMs / 1000);
    // Decode: a prefill run, a one-step run for the first token, then chunks of up to 24 steps
    // (the engine times them: a slow model gets shorter ones); best of 3 (the
    // machine may be shared). The copy bandwidth is measured just before and after (best of
    // all), under the same conditions.
    const bwBefore = await bandwidth();
    let decodeRate = 0;
    for (let i = 0; i < 3; i++) {
      const run = await generate(engine, randomPrompt(128, 3 + i), 25, 24);
      decodeRate = Math.max(decodeRate, 25 / (run.timings.decodeMs / 1000));
    }
    const rss2 = process.memoryUsage().rss;
    const bwAll = Math.max(bwBefore, await bandwidth());
    const bw = bwAll;
    // Two readings of "copy bandwidth": bytes copied per second (memcpy rate), and the memory
    // traffic of that copy, read + write (STREAM's convention), which is twice as much. The
    // second gives the stricter bound.
    const bound = bw / weightBytesPerToken;
    const strictBound = (2 * bw) / weightBytesPerToken;
    console.log(
      `\nmemory:  copy bandwidth ${fmt(bw / GiB, 2)} GiB/s copied = ${fmt((2 * bw) / GiB, 2)} GiB/s read + written` +
        ` (best of 1 and ${threads} threads, 1 GiB buffer)`,
    );
    console.log(`         weights read per decoded token ${fmt(weightBytesPerToken / GiB, 2)} GiB`);
    console.log(
      `         bandwidth bound ${fmt(bound, 2)} tokens/s (copied bytes), ${fmt(strictBound, 2)} tokens/s (read + written)`,
    );
    console.log(
      `prefill: ${fmt(prefillRate, 1)} tokens/s (128-token prompt, ${fmt(prefill.timings.prefillMs, 0)} ms)`,
    );
    console.log(
      `decode:  ${fmt(decodeRate, 2)} tokens/s at context 128 (25 tokens in chunks of up to 24, best of 3)`,
    );
    console.log(
      `         = ${fmt((100 * decodeRate) / bound, 0)}% of the copied-bytes bound, ` +
        `${fmt((100 * decodeRate) / strictBound, 0)}% of the read + written bound (target >= 60%)`,
    );
    console.log(`         resident memory ${fmt(rss2 / GiB, 2)} GiB after generating`);

    console.log(
      `\nbytes across the host/runtime boundary per generated token (${streamed} tokens streamed):`,
    );
    console.log(`  KV cache: ${fmt(kvBytesPerToken / 1024, 0)} KiB per token of context`);
    const contexts = values['skip-long'] ? [128] : [128, 1024];
    for (const ctx of contexts) {
      const chunked = await generate(engine, randomPrompt(ctx, 4 + ctx), streamed);
      // The same prompt and stream, one run per token: what a design without in-graph
      // sampling has to do (the cache goes in and out on every token).
      const naive = await generate(engine, randomPrompt(ctx, 4 + ctx), streamed, 1);
      const ratio = naive.boundaryBytesPerToken / chunked.boundaryBytesPerToken;
      console.log(
        `  context ${String(ctx).padStart(4)}: chunked ${fmt(chunked.boundaryBytesPerToken / MiB, 2)} MiB/token ` +
          `(${chunked.runs} runs: ${chunked.chunkSizes.join(',')}), naive ${fmt(naive.boundaryBytesPerToken / MiB, 2)} MiB/token; ` +
          `1/${fmt(ratio, 1)} of naive (chunks are timed to CHUNK_TARGET_MS: where one step takes ` +
          `about that long, as here, a chunk is a step or two and saves little; on a GPU it is many steps)`,
      );
      const rate = (chunked.completionTokens - chunked.chunkSizes[0]!) / (chunked.timings.decodeMs / 1000);
      console.log(
        `                 decode ${fmt(rate, 2)} tokens/s while streaming, first token after ${fmt(chunked.timings.firstTokenMs, 0)} ms`,
      );
    }
    console.log(`\nengine metrics: ${JSON.stringify(engine.metrics())}`);
    bandwidthSeen = bwAll;

    // The same checkpoint quantized, in engines beside this one, the forms taking turns.
    const forms: OpenForm[] = [{ form: 'float32', engine, manifest }];
    try {
      for (const form of ['int8', 'int4'] as const) {
        const dir = await convertedForm(CHECKPOINT, ROOT, form);
        const opened = await GenerationEngine.open(dir, { intraOpNumThreads: threads, provider: 'cpu' });
        forms.push({ form, engine: opened, manifest: await readManifest(dir) });
      }
      rows = await compareForms(forms, { prefill: 128, steps: 48, rounds: 5 });
    } finally {
      for (const f of forms.slice(1)) await f.engine.close();
    }
  } finally {
    await engine.close();
  }
  const read = Math.max(await readBandwidth(1), await readBandwidth(threads));
  printForms(rows, read);
  const load = os.loadavg().map((x) => fmt(x, 2));
  console.log(
    `(bounds from ${fmt(read / GiB, 2)} GiB/s read: memcmp, best of 1 and ${threads} threads; the copy ` +
      `above: ${fmt(bandwidthSeen / GiB, 2)} GiB/s copied; load average ${load.join(' ')})`,
  );
}

/** Each 7B-shaped form in a fresh process (resident memory is per process). */
function run7b(threads: number): void {
  const config = parseModelConfig({ architectures: ['JapaneseStableLMAlphaForCausalLM'] });
  const float32Bytes = [...expectedTensors(config).values()].reduce(
    (a, s) => a + 4 * s.reduce((x, y) => x * y, 1),
    0,
  );
  console.log(
    `7B-shaped model as float32: ${fmt(float32Bytes / GiB, 1)} GiB of weights; this machine has ` +
      `${fmt(os.totalmem() / GiB, 1)} GiB of RAM${float32Bytes > os.totalmem() ? ': it cannot be loaded, not measured' : ''}`,
  );
  for (const form of ['int4', 'int8']) {
    const child = spawnSync(
      process.execPath,
      [process.argv[1] as string, '--7b-form', form, '--threads', String(threads)],
      { stdio: 'inherit' },
    );
    if (child.status !== 0) throw new Error(`the ${form} run failed (exit ${child.status})`);
  }
  console.log(
    `(load average ${os
      .loadavg()
      .map((x) => fmt(x, 2))
      .join(' ')})`,
  );
}

await main();
