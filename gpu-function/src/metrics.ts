import type { EngineRun } from './engine-port.ts';

// A minimal Prometheus registry: counters and gauges with labels, rendered in the text
// exposition format (version 0.0.4). Enough for a handful of service metrics without a library.

type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  values: Map<string, { labels: Labels; value: number }>;
}

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

export class Registry {
  private readonly families = new Map<string, Family>();

  private family(name: string, help: string, type: Family['type']): Family {
    let f = this.families.get(name);
    if (!f) {
      f = { name, help, type, values: new Map() };
      this.families.set(name, f);
    }
    return f;
  }

  counter(name: string, help: string) {
    const f = this.family(name, help, 'counter');
    return {
      inc: (labels: Labels = {}, by = 1) => {
        const key = labelKey(labels);
        const cur = f.values.get(key);
        if (cur) cur.value += by;
        else f.values.set(key, { labels, value: by });
      },
      get: (labels: Labels = {}) => f.values.get(labelKey(labels))?.value ?? 0,
    };
  }

  gauge(name: string, help: string) {
    const f = this.family(name, help, 'gauge');
    return {
      set: (value: number, labels: Labels = {}) => {
        f.values.set(labelKey(labels), { labels, value });
      },
      get: (labels: Labels = {}) => f.values.get(labelKey(labels))?.value ?? 0,
    };
  }

  render(): string {
    const lines: string[] = [];
    for (const f of this.families.values()) {
      lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
      for (const { labels, value } of f.values.values()) {
        lines.push(`${f.name}${formatLabels(labels)} ${Number.isFinite(value) ? value : 'NaN'}`);
      }
    }
    return `${lines.join('\n')}\n`;
  }
}

/** The GPU function's metrics, declared in one place. */
export function createServiceMetrics(registry = new Registry()) {
  const m = {
    registry,
    requests: registry.counter(
      'gpu_generate_requests_total',
      'Generation requests by outcome (a finish reason, or why it was refused).',
    ),
    promptTokens: registry.counter('gpu_prompt_tokens_total', 'Prompt tokens of served requests.'),
    completionTokens: registry.counter('gpu_completion_tokens_total', 'Generated tokens streamed back.'),
    queueDepth: registry.gauge('gpu_queue_depth', 'Requests waiting for the model load or a free engine.'),
    active: registry.gauge('gpu_active_generations', 'Generations running now.'),
    ready: registry.gauge('gpu_ready', '1 when the weights are verified and the session is ready.'),
    loads: registry.counter('gpu_model_loads_total', 'Model loads by result (ok, error).'),
    loadPhaseSeconds: registry.gauge(
      'gpu_load_phase_seconds',
      'Duration of each phase of the last model load (manifest, fetch, verify, session).',
    ),
    loadBytesFetched: registry.counter('gpu_load_bytes_fetched_total', 'Weight bytes downloaded.'),
    loadBytesReused: registry.counter(
      'gpu_load_bytes_reused_total',
      'Weight bytes taken from the local cache (whole files or resumed parts).',
    ),
    modelBytes: registry.gauge('gpu_model_bytes', 'Size of the model files listed in the manifest.'),
    bytesPerToken: registry.gauge(
      'gpu_engine_bytes_per_token',
      'Bytes moved between host and runtime per generated token (engine metric, last request).',
    ),
    rowsWaiting: registry.gauge('gpu_rows_waiting', 'Rows (samples) waiting for room in the batch.'),
    queueWaitSeconds: registry.gauge(
      'gpu_queue_wait_seconds',
      'How long the last admitted request part waited for room in the batch.',
    ),
    kvReservedBytes: registry.gauge(
      'gpu_kv_cache_reserved_bytes',
      'Key/value cache the running rows may reach (what admission counts against the budget).',
    ),
    kvBytes: registry.gauge('gpu_kv_cache_bytes', 'Key/value cache held by the batch after the last run.'),
    batchRows: registry.gauge('gpu_batch_rows', 'Rows in the last decode run.'),
    runs: registry.counter(
      'gpu_engine_runs_total',
      'Runs of the generation graph by kind (prefill, decode).',
    ),
    runRows: registry.counter(
      'gpu_engine_run_rows_total',
      'Rows summed over runs by kind; divided by gpu_engine_runs_total, the mean batch size.',
    ),
    runSeconds: registry.counter('gpu_engine_run_seconds_total', 'Time in runs of the graph by kind.'),
    decodeTokensPerSecond: registry.gauge(
      'gpu_decode_tokens_per_second',
      'Tokens all rows produced per second in the last decode run.',
    ),
    boundaryBytes: registry.counter(
      'gpu_engine_boundary_bytes_total',
      'Bytes that crossed the host/runtime boundary (run inputs and outputs).',
    ),
  };
  m.queueDepth.set(0);
  m.active.set(0);
  m.ready.set(0);
  return m;
}

export type ServiceMetrics = ReturnType<typeof createServiceMetrics>;

/** Records one run of the graph (see EngineRun). */
export function recordRun(m: ServiceMetrics, run: EngineRun): void {
  const kind = { kind: run.kind };
  m.runs.inc(kind);
  m.runRows.inc(kind, run.batch);
  m.runSeconds.inc(kind, run.ms / 1000);
  m.boundaryBytes.inc({}, run.boundaryBytes);
  m.kvBytes.set(run.kvBytes);
  if (run.kind === 'decode') {
    m.batchRows.set(run.batch);
    m.decodeTokensPerSecond.set(run.ms > 0 ? (run.tokens * 1000) / run.ms : 0);
  }
}
