// Child process of the proof: opens each graph given as `logId=path` with the engine's session
// options and onnxruntime's verbose log, then exits. onnxruntime writes that log to this
// process's stderr from native code, which only a parent process can capture (probePlacements).
//
//   node scripts/gpu/placement-probe.ts --provider cuda tiny-f16-generate=/path/graph.generate.onnx ...

import { spawn } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { engineSessionOptions, ORT_PROVIDER_NAME, type Provider } from './engine-usage.ts';
import { fallbackWarnings, judgePlacement, type PlacementVerdict, parsePlacements } from './placement.ts';

export interface ProbeResult {
  id: string;
  graph: string;
  opened: boolean;
  error?: string;
  verdict: PlacementVerdict;
}

/**
 * Runs this file as a child and judges every graph's placement against `provider`. The child's
 * stderr is a file, not a pipe: onnxruntime writes with plain blocking writes, and Node makes
 * its stdio pipes non-blocking, so a pipe that fills up silently drops log lines.
 */
export async function probePlacements(
  provider: Provider,
  graphs: { id: string; graph: string }[],
  logFile: string,
): Promise<{ results: ProbeResult[]; warnings: string[]; log: string }> {
  const self = fileURLToPath(import.meta.url);
  const args = [self, '--provider', provider, ...graphs.map((g) => `${g.id}=${g.graph}`)];
  const logHandle = await open(logFile, 'w');
  let stdout = '';
  let code: number | null;
  try {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', logHandle.fd] });
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  } finally {
    await logHandle.close();
  }
  const log = await readFile(logFile, 'utf8');
  const opened = new Map<string, string | null>();
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const r = JSON.parse(line) as { id: string; error: string | null };
    opened.set(r.id, r.error);
  }
  const placements = parsePlacements(log);
  const results = graphs.map((g): ProbeResult => {
    const error = opened.has(g.id) ? opened.get(g.id) : `probe exited with ${code} before opening it`;
    return {
      ...g,
      opened: error === null,
      ...(error ? { error } : {}),
      verdict: judgePlacement(placements.get(g.id), ORT_PROVIDER_NAME[provider]),
    };
  });
  return { results, warnings: fallbackWarnings(log), log };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { provider: { type: 'string', default: 'cuda' } },
  });
  const provider = values.provider as Provider;
  for (const arg of positionals) {
    const eq = arg.indexOf('=');
    const id = arg.slice(0, eq);
    let error: string | null = null;
    try {
      const session = await ort.InferenceSession.create(arg.slice(eq + 1), {
        ...engineSessionOptions(provider),
        logSeverityLevel: 0,
        logId: id,
      });
      await session.release();
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    process.stdout.write(`${JSON.stringify({ id, error })}\n`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
