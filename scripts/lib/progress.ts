// A progress reporter for long CLI work: a redrawn bar on a TTY, periodic plain lines
// otherwise (logs, CI). Writes to stderr so stdout stays clean for results.

export interface Progress {
  /** Adds `n` units (bytes, tensors, ...) of work done. */
  tick(n: number): void;
  /** Sets the total when it becomes known. */
  setTotal(total: number): void;
  done(message?: string): void;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--';
  if (s < 60) return `${Math.round(s)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}

export function createProgress(
  label: string,
  options: {
    total?: number;
    unit?: 'bytes' | 'items';
    stream?: NodeJS.WriteStream;
    intervalMs?: number;
  } = {},
): Progress {
  const stream = options.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const bytes = (options.unit ?? 'bytes') === 'bytes';
  const intervalMs = options.intervalMs ?? (tty ? 100 : 5000);
  const start = performance.now();
  let total = options.total ?? 0;
  let doneUnits = 0;
  let lastDraw = 0;
  const fmt = (n: number) => (bytes ? formatBytes(n) : String(n));

  function line(): string {
    const elapsed = (performance.now() - start) / 1000;
    const rate = elapsed > 0 ? doneUnits / elapsed : 0;
    const rateText = bytes ? `${formatBytes(rate)}/s` : `${rate.toFixed(1)}/s`;
    if (total > 0) {
      const frac = Math.min(1, doneUnits / total);
      const width = 24;
      const filled = Math.round(frac * width);
      const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
      const eta = rate > 0 ? (total - doneUnits) / rate : Number.NaN;
      return `${label} [${bar}] ${(frac * 100).toFixed(1)}% ${fmt(doneUnits)}/${fmt(total)} ${rateText} eta ${formatDuration(eta)}`;
    }
    return `${label} ${fmt(doneUnits)} ${rateText}`;
  }

  function draw(force: boolean): void {
    const now = performance.now();
    if (!force && now - lastDraw < intervalMs) return;
    lastDraw = now;
    if (tty) stream.write(`\r\x1b[2K${line()}`);
    else stream.write(`${line()}\n`);
  }

  return {
    tick(n) {
      doneUnits += n;
      draw(false);
    },
    setTotal(t) {
      total = t;
    },
    done(message) {
      draw(true);
      if (tty) stream.write('\n');
      const secs = ((performance.now() - start) / 1000).toFixed(1);
      stream.write(`${label}: ${message ?? 'done'} (${fmt(doneUnits)} in ${secs}s)\n`);
    },
  };
}
