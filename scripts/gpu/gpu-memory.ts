// GPU facts from nvidia-smi (Node cannot see the device otherwise). onnxruntime's CUDA arena
// keeps what it once allocated, so memory read after a stage is that stage's high-water mark.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface GpuInfo {
  name: string;
  driver: string;
  totalMiB: number;
}

export interface GpuMemory {
  /** Used on the whole device. */
  deviceMiB: number;
  /** Used by this process, when nvidia-smi can attribute it (not under every sandbox). */
  processMiB: number | null;
}

async function query(args: string[]): Promise<string[][] | null> {
  try {
    const { stdout } = await run('nvidia-smi', [...args, '--format=csv,noheader,nounits'], {
      timeout: 15_000,
    });
    return stdout
      .trim()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => l.split(',').map((c) => c.trim()));
  } catch {
    return null;
  }
}

export async function gpuInfo(): Promise<GpuInfo | null> {
  const rows = await query(['--query-gpu=name,driver_version,memory.total']);
  const r = rows?.[0];
  return r ? { name: r[0] ?? '?', driver: r[1] ?? '?', totalMiB: Number(r[2]) } : null;
}

export async function gpuMemory(pid = process.pid): Promise<GpuMemory | null> {
  const device = await query(['--query-gpu=memory.used']);
  if (!device?.[0]) return null;
  const apps = await query(['--query-compute-apps=pid,used_memory']);
  const mine = apps?.find((r) => Number(r[0]) === pid);
  return { deviceMiB: Number(device[0][0]), processMiB: mine ? Number(mine[1]) : null };
}
