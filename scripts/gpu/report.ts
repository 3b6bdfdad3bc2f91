// The proof's result (written as JSON after every stage) and its markdown summary.

import type { Check } from './fixture-checks.ts';
import type { PerfResult } from './perf.ts';

export interface ProveResult {
  label: string;
  provider: string;
  startedAt: string;
  finishedAt?: string;
  environment: Record<string, unknown>;
  checks: Check[];
  placementWarnings: string[];
  perf: PerfResult[];
  /** Failed, non-informational checks and perf errors. */
  failures: string[];
}

export function failuresOf(r: Pick<ProveResult, 'checks' | 'perf'>): string[] {
  return [
    ...r.checks.filter((c) => !c.ok && !c.informational).map((c) => `${c.name}: ${c.detail}`),
    ...r.perf.filter((p) => p.error).map((p) => `perf ${String(p.model.shape)}: ${p.error?.split('\n')[0]}`),
  ];
}

const n = (x: number | undefined, digits = 1) =>
  x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(2);
const gb = (bytes: unknown) => (typeof bytes === 'number' ? (bytes / 1e9).toFixed(2) : '–');

function perfSection(p: PerfResult): string[] {
  const m = p.model;
  const lines = [
    `### ${String(m.shape)} ${String(m.dtype)}${m.quantize ? ` ${String(m.quantize)}` : ''}: ` +
      `${gb(m.parameters)} B parameters, ${gb(m.weightBytes)} GB of weights`,
    '',
    `random checkpoint ${p.prepare.checkpointMs === undefined ? 'reused' : `${n(p.prepare.checkpointMs / 1000)} s`}, ` +
      `convert ${n((p.prepare.convertMs ?? 0) / 1000)} s, ` +
      `engine open ${n((p.open?.ms ?? 0) / 1000)} s (session ${n((p.open?.createMs ?? 0) / 1000)} s) on ${p.open?.provider ?? '–'}`,
    '',
  ];
  if (p.error) lines.push('```', p.error, '```', '');
  if (p.prefill.length) {
    lines.push(
      '| prompt | prefill tokens/s | prefill ms | time to first token ms |',
      '| --- | --- | --- | --- |',
    );
    for (const x of p.prefill) {
      lines.push(`| ${x.promptTokens} | ${n(x.tokensPerS, 0)} | ${n(x.ms)} | ${n(x.firstTokenMs)} |`);
    }
    lines.push('');
  }
  if (p.decode.length) {
    lines.push(
      '| context | decode tokens/s | ms/step | first token ms | boundary MiB/token | chunks |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const x of p.decode) {
      lines.push(
        `| ${x.context} | ${n(x.tokensPerS)} | ${n(x.msPerStep, 2)} | ${n(x.firstTokenMs)} | ` +
          `${mib(x.boundaryBytesPerToken)} | ${x.chunkSizes.join(',')} |`,
      );
    }
    const bytes = Number(m.weightBytesReadPerStep);
    lines.push(
      '',
      `weights read per decode step: ${gb(bytes)} GB; KV cache ${n(Number(m.kvBytesPerToken) / 1024, 0)} KiB per token`,
      '',
    );
  }
  if (p.concurrent.length) {
    lines.push(
      '| requests | largest batch | tokens/s (wall) | decode tokens/s | first token ms mean / max | boundary MiB/token |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const x of p.concurrent) {
      lines.push(
        `| ${x.requests} | ${x.maxBatch} | ${n(x.tokensPerS)} | ${n(x.decodeTokensPerS)} | ` +
          `${n(x.firstTokenMs.mean, 0)} / ${n(x.firstTokenMs.max, 0)} | ${mib(x.boundaryBytesPerToken)} |`,
      );
    }
    lines.push('');
  }
  const mem = Object.entries(p.memory).filter(([, v]) => v);
  if (mem.length) {
    lines.push(
      `GPU memory (MiB, device / this process): ${mem
        .map(([k, v]) => `${k} ${v?.deviceMiB} / ${v?.processMiB ?? '?'}`)
        .join('; ')}`,
      '',
    );
  }
  if (p.skipped.length) lines.push(`skipped: ${p.skipped.join(', ')}`, '');
  return lines;
}

export function renderMarkdown(r: ProveResult): string {
  const env = r.environment;
  const lines = [
    `# GPU proof: ${r.label}`,
    '',
    `${r.startedAt} – ${r.finishedAt ?? '(unfinished)'}; provider ${r.provider}`,
    '',
    ...Object.entries(env).map(([k, v]) => `- ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`),
    '',
    r.failures.length ? `**FAILED: ${r.failures.length}**` : '**all checks passed**',
    '',
    ...r.failures.map((f) => `- ${f}`),
    '',
    '## Checks',
    '',
    '| | check | detail |',
    '| --- | --- | --- |',
    ...r.checks.map(
      (c) => `| ${c.ok ? 'ok' : c.informational ? 'info' : 'FAIL'} | ${c.name} | ${c.detail} |`,
    ),
    '',
  ];
  if (r.placementWarnings.length) {
    lines.push('onnxruntime warnings:', '', ...r.placementWarnings.map((w) => `- ${w}`), '');
  }
  if (r.perf.length) lines.push('## Speed', '', ...r.perf.flatMap(perfSection));
  return `${lines.join('\n')}\n`;
}
