// The GPU bundle's parts, sums and call plan (scripts/gpu/bundle-spec.ts); no bundle needed.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUNDLE_DIR,
  callPlan,
  checkParts,
  DEFAULT_PART_BYTES,
  formatSums,
  parseSums,
  partCount,
  partName,
} from '../../../scripts/gpu/bundle-spec.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('bundle parts', () => {
  it('cuts into whole parts that fit a device call', () => {
    expect(partCount(0, 10)).toBe(1);
    expect(partCount(10, 10)).toBe(1);
    expect(partCount(11, 10)).toBe(2);
    expect(partCount(205e6, DEFAULT_PART_BYTES)).toBe(4);
    expect(DEFAULT_PART_BYTES).toBeLessThan(64 * 1024 * 1024);
    expect(() => partCount(1, 0)).toThrow(RangeError);
    expect([partName(0), partName(11)]).toEqual(['bundle.tar.xz.part-01', 'bundle.tar.xz.part-12']);
  });

  it('writes sums in the format sha256sum -c reads, and reads them back', () => {
    const files = [
      { name: partName(0), size: 3, sha256: sha(Buffer.from('abc')) },
      { name: 'bundle.tar.xz', size: 3, sha256: sha(Buffer.from('abc')) },
    ];
    const text = formatSums(files);
    expect(text).toBe(`${files[0]?.sha256}  bundle.tar.xz.part-01\n${files[1]?.sha256}  bundle.tar.xz\n`);
    expect(parseSums(text)).toEqual(new Map(files.map((f) => [f.name, f.sha256])));
    expect(() => parseSums('nonsense\n')).toThrow(/not a sha256sum line/);
  });

  it('plans one call per part, each carrying the sums and the manifest', () => {
    const parts = [0, 1, 2].map((i) => ({ name: partName(i), size: 1, sha256: '0'.repeat(64) }));
    const plan = callPlan({ parts });
    expect(plan).toHaveLength(3);
    expect(plan[2]).toEqual({
      call: 3,
      carry: [
        `${BUNDLE_DIR}/SHA256SUMS`,
        `${BUNDLE_DIR}/manifest.json`,
        `${BUNDLE_DIR}/bundle.tar.xz.part-03`,
      ],
    });
  });

  describe('checking parts on disk', () => {
    let dir: string;
    beforeAll(async () => {
      const root = path.resolve('.cache/gpu-tests');
      await mkdir(root, { recursive: true });
      dir = await mkdtemp(path.join(root, 'parts-'));
    });
    afterAll(() => rm(dir, { recursive: true, force: true }));

    it('tells intact, missing and damaged parts apart', async () => {
      const data = [Buffer.from('first part'), Buffer.from('second part'), Buffer.from('third')];
      const parts = data.map((d, i) => ({ name: partName(i), size: d.length, sha256: sha(d) }));
      await writeFile(path.join(dir, partName(0)), data[0] as Buffer);
      await writeFile(path.join(dir, partName(1)), Buffer.from('second pArt'));
      expect(await checkParts(dir, { parts })).toEqual({
        ok: [partName(0)],
        bad: [partName(1)],
        missing: [partName(2)],
      });
    });
  });
});
