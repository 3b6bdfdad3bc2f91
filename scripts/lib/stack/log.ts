// The stack's log: one line per event, prefixed with the part it comes from, so the output of
// five processes stays readable in one terminal. The GPU function logs JSON lines; they are
// shown as `event key=value ...`.

export type Source = 'stack' | 's3' | 'model' | 'gpu' | 'supervisor' | 'edge' | 'tokenizer';
export type Level = 'info' | 'warn' | 'error';

export interface StackLog {
  line(source: Source, text: string, level?: Level): void;
  /** Whether long work may draw progress bars (a terminal is watching). */
  readonly interactive: boolean;
}

const COLORS: Record<Source, number> = {
  stack: 1,
  s3: 36,
  model: 35,
  gpu: 33,
  supervisor: 34,
  edge: 32,
  tokenizer: 35,
};
const WIDTH = Math.max(...Object.keys(COLORS).map((s) => s.length));

/** Prints to stdout (warnings and errors to stderr), coloured on a terminal. */
export function consoleLog(): StackLog {
  const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
  return {
    interactive: process.stderr.isTTY === true,
    line(source, text, level = 'info') {
      const name = `[${source}]`.padEnd(WIDTH + 2);
      const prefix = color ? `\x1b[${COLORS[source]}m${name}\x1b[0m` : name;
      const body = level === 'info' ? text : `${level}: ${text}`;
      (level === 'info' ? process.stdout : process.stderr).write(`${prefix} ${body}\n`);
    },
  };
}

/** Keeps the last lines in memory (tests print them when something fails). */
export function memoryLog(keep = 2000): StackLog & { lines: string[]; text(): string } {
  const lines: string[] = [];
  const t0 = performance.now();
  return {
    interactive: false,
    lines,
    line(source, text, level = 'info') {
      const at = ((performance.now() - t0) / 1000).toFixed(2).padStart(7);
      lines.push(`${at} [${source}] ${level === 'info' ? '' : `${level}: `}${text}`);
      if (lines.length > keep) lines.splice(0, lines.length - keep);
    },
    text: () => lines.join('\n'),
  };
}

const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

function fieldText(value: unknown): string {
  if (typeof value === 'string') return /\s/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

/**
 * A GPU function log line (`{"time","level","event",...fields}`) as `event k=v ...`, with its
 * level; other lines (onnxruntime's own output) pass through unchanged.
 */
export function formatServiceLine(line: string): { text: string; level: Level; event?: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return { text: line, level: 'info' };
  }
  if (typeof parsed !== 'object' || parsed === null || !('event' in parsed))
    return { text: line, level: 'info' };
  const { time: _, level, event, ...fields } = parsed as Record<string, unknown>;
  const text = [String(event), ...Object.entries(fields).map(([k, v]) => `${k}=${fieldText(v)}`)].join(' ');
  const lvl: Level = level === 'error' ? 'error' : level === 'warn' ? 'warn' : 'info';
  return { text, level: lvl, event: String(event) };
}
