// A .bin checkpoint whose data.pkl is a zip bomb: a few hundred kilobytes that inflate to far
// more than the entry declares. Reading stops at the declared size instead of inflating it all.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError } from '../../../gpu-function/src/checkpoint/errors.ts';
import { readTorchCheckpoint } from '../../../gpu-function/src/checkpoint/torch-bin.ts';

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

const u16 = (v: number) => Buffer.from([v & 0xff, (v >>> 8) & 0xff]);
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};

/** A one-entry zip: `name`, deflated `compressed`, claiming `declaredSize` and `crc`. */
function oneEntryZip(name: string, compressed: Buffer, declaredSize: number, crc: number): Buffer {
  const n = Buffer.from(name);
  const head = (sig: number) => [u32(sig), u16(20)];
  const local = Buffer.concat([
    ...head(0x04034b50),
    u16(0),
    u16(8),
    u16(0),
    u16(0x21),
    u32(crc),
    u32(compressed.length),
    u32(declaredSize),
    u16(n.length),
    u16(0),
    n,
  ]);
  const central = Buffer.concat([
    ...head(0x02014b50),
    u16(20),
    u16(0),
    u16(8),
    u16(0),
    u16(0x21),
    u32(crc),
    u32(compressed.length),
    u32(declaredSize),
    u16(n.length),
    u16(0),
    u16(0),
    u16(0),
    u16(0),
    u32(0),
    u32(0),
    n,
  ]);
  const dirOffset = local.length + compressed.length;
  const end = Buffer.concat([
    u32(0x06054b50),
    u16(0),
    u16(0),
    u16(1),
    u16(1),
    u32(central.length),
    u32(dirOffset),
    u16(0),
  ]);
  return Buffer.concat([local, compressed, central, end]);
}

describe('zip entries read into memory', () => {
  it('stop inflating at the declared size (a zip bomb in data.pkl)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zip-bomb-'));
    dirs.push(dir);
    // 128 MiB of zeros deflate to about 125 kB; the entry claims 100 bytes.
    const chunk = deflateRawSync(Buffer.alloc(128 * 1024 * 1024), { level: 9 });
    const file = join(dir, 'pytorch_model.bin');
    await writeFile(file, oneEntryZip('archive/data.pkl', chunk, 100, 0));
    const before = process.memoryUsage().arrayBuffers;
    const t0 = performance.now();
    const err = await readTorchCheckpoint(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(/data\.pkl' \(inflates past its declared 100 bytes\)/);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
  });

  it('refuse an entry that claims more than a pickle ever needs, before allocating it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zip-huge-'));
    dirs.push(dir);
    const content = Buffer.from('x');
    const file = join(dir, 'pytorch_model.bin');
    await writeFile(
      file,
      oneEntryZip('archive/data.pkl', deflateRawSync(content), 3_000_000_000, crc32(content)),
    );
    await expect(readTorchCheckpoint(file)).rejects.toThrow(/data\.pkl' is 3000000000 bytes; at most/);
  });
});
