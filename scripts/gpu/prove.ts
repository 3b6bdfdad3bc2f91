// The proof of the CUDA path, run by scripts/gpu/prove.sh on the lent GPU machine (or here with
// --provider cpu as a dry run of the same code):
//
//   fixtures   golden logits (forward.onnx) and greedy continuations (the engine), float32 and
//              float16, on the golden fixtures converted by the project's converter
//   placement  every node of the generation and forward graphs on the provider (verbose log)
//   perf       a random model of a real shape: prefill/decode tokens/s, time to first token,
//              boundary bytes per token, GPU memory, concurrent requests
//
// Results go to OUT/prove-LABEL.json (rewritten after every stage, so a timeout keeps what was
// done) and OUT/prove-LABEL.md. Exit status 1 when any check failed.
//
//   node scripts/gpu/prove.ts --fixtures DIR [--provider cuda|cpu] [--out DIR] [--work DIR]
//        [--stages fixtures,placement,perf] [--dtypes float32,float16] [--tf32]
//        [--perf-shape 7b|1b|demo] [--perf-dtype float16|float32] [--perf-quantize none,int4]
//        [--concurrency 1,4,16,32] [--budget-s 420] [--label NAME]

import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { cudaProviderInstalled } from '../../gpu-function/src/engine/session.ts';
import type { QuantizedDtype } from '../../gpu-function/src/model/quantized-linear.ts';
import { graphFiles, type Provider } from './engine-usage.ts';
import { type Check, checkFixture, convertFixture, type Dtype } from './fixture-checks.ts';
import { gpuInfo } from './gpu-memory.ts';
import { runPerf } from './perf.ts';
import { probePlacements } from './placement-probe.ts';
import { failuresOf, type ProveResult, renderMarkdown } from './report.ts';

const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

async function environment(provider: Provider): Promise<Record<string, unknown>> {
  const require = createRequire(import.meta.url);
  const ortPkg = path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'package.json');
  return {
    node: process.version,
    onnxruntimeNode: JSON.parse(await readFile(ortPkg, 'utf8')).version,
    // Backends the binding was built for ('cuda' must be there; bundled: false is expected).
    backends: ort.listSupportedBackends().map((b) => b.name),
    cudaProviderInstalled: cudaProviderInstalled(),
    gpu: provider === 'cuda' ? await gpuInfo() : null,
    cpu: `${os.cpus()[0]?.model ?? '?'} x ${os.availableParallelism()}`,
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    NVIDIA_TF32_OVERRIDE: process.env.NVIDIA_TF32_OVERRIDE ?? '(unset)',
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      provider: { type: 'string', default: 'cuda' },
      fixtures: { type: 'string' },
      out: { type: 'string', default: process.env.OUT ?? '.cache/gpu-prove/out' },
      work: { type: 'string', default: '.cache/gpu-prove/work' },
      stages: { type: 'string', default: 'fixtures,placement,perf' },
      dtypes: { type: 'string', default: 'float32,float16' },
      tf32: { type: 'boolean', default: false },
      'perf-shape': { type: 'string' },
      'perf-dtype': { type: 'string' },
      'perf-quantize': { type: 'string', default: 'none' },
      concurrency: { type: 'string' },
      'budget-s': { type: 'string', default: '420' },
      label: { type: 'string' },
    },
  });
  const started = performance.now();
  const provider = values.provider as Provider;
  if (provider !== 'cuda' && provider !== 'cpu') throw new Error(`--provider must be cuda or cpu`);
  if (!values.fixtures) throw new Error('--fixtures DIR is required');
  const cpu = provider === 'cpu';
  const stages = new Set(list(values.stages));
  const dtypes = list(values.dtypes) as Dtype[];
  const label = values.label ?? `${provider}${values.tf32 ? '-tf32' : ''}`;
  const out = path.resolve(values.out);
  const work = path.resolve(values.work);
  const fixturesRoot = path.resolve(values.fixtures);
  await mkdir(out, { recursive: true });
  await mkdir(work, { recursive: true });

  const result: ProveResult = {
    label,
    provider,
    startedAt: new Date().toISOString(),
    environment: await environment(provider),
    checks: [],
    placementWarnings: [],
    perf: [],
    failures: [],
  };
  const save = async () => {
    result.failures = failuresOf(result);
    await writeFile(path.join(out, `prove-${label}.json`), `${JSON.stringify(result, null, 2)}\n`);
    await writeFile(path.join(out, `prove-${label}.md`), renderMarkdown(result));
  };
  const say = (s: string) =>
    process.stderr.write(`[prove ${((performance.now() - started) / 1000).toFixed(0)}s] ${s}\n`);
  const record = (checks: Check[]) => {
    for (const c of checks)
      say(`${c.ok ? 'ok  ' : c.informational ? 'info' : 'FAIL'} ${c.name}: ${c.detail}`);
    result.checks.push(...checks);
  };
  say(`environment ${JSON.stringify(result.environment)}`);
  await save();

  const fixtures = (await readdir(fixturesRoot))
    .sort()
    .map((f) => path.join(fixturesRoot, f))
    .filter((d) => existsSync(path.join(d, 'golden.json')));
  const models: { id: string; dir: string }[] = [];
  for (const fixture of fixtures) {
    for (const dtype of dtypes) {
      const id = `${path.basename(fixture)}.${dtype}`;
      try {
        if (stages.has('fixtures')) {
          const r = await checkFixture({
            provider,
            fixtureDir: fixture,
            workDir: work,
            dtype,
            tf32: values.tf32,
          });
          record(r.checks);
          models.push({ id, dir: r.modelDir });
        } else if (stages.has('placement')) {
          models.push({ id, dir: await convertFixture(fixture, work, dtype) });
        }
      } catch (err) {
        record([
          {
            name: `${id} fixture checks`,
            ok: false,
            detail: err instanceof Error ? err.message : String(err),
          },
        ]);
      }
      await save();
    }
  }

  if (stages.has('placement') && models.length > 0) {
    const graphs = [];
    for (const m of models) {
      const g = await graphFiles(m.dir);
      graphs.push({ id: `${m.id}.generate`, graph: g.generate }, { id: `${m.id}.forward`, graph: g.forward });
    }
    const probe = await probePlacements(provider, graphs, path.join(work, `placement-${label}.log`));
    record(
      probe.results.map((p) => ({
        name: `placement ${p.id}`,
        ok: p.opened && p.verdict.ok,
        detail: p.error ?? p.verdict.summary,
        data: p.verdict,
      })),
    );
    result.placementWarnings = probe.warnings;
    await save();
  }

  if (stages.has('perf')) {
    const budgetMs = Number(values['budget-s']) * 1000;
    for (const q of list(values['perf-quantize'])) {
      const perf = await runPerf({
        provider,
        shape: values['perf-shape'] ?? (cpu ? 'demo' : '7b'),
        dtype: (values['perf-dtype'] ?? (cpu ? 'float32' : 'float16')) as 'float32' | 'float16',
        ...(q !== 'none' ? { quantize: q as QuantizedDtype } : {}),
        workDir: work,
        concurrency: list(values.concurrency ?? (cpu ? '1,2' : '1,4,16,32')).map(Number),
        deadline: started + budgetMs,
        progress: async (r) => {
          const i = result.perf.indexOf(r);
          if (i < 0) result.perf.push(r);
          await save();
        },
      });
      say(
        `perf ${perf.model.shape} ${perf.model.dtype}${q !== 'none' ? ` ${q}` : ''}: ${perf.error ?? 'done'}`,
      );
    }
  }

  result.finishedAt = new Date().toISOString();
  await save();
  say(result.failures.length ? `FAILED: ${result.failures.length}` : 'all checks passed');
  say(`results: ${path.join(out, `prove-${label}.md`)}`);
  return result.failures.length ? 1 : 0;
}

process.exitCode = await main();
