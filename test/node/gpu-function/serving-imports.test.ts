// The serving code never loads the converter: everything the GPU function's process can import
// (statically or lazily) stays out of convert/ and checkpoint/, which only the CLI uses.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve('gpu-function/src');

/** Every module reachable from `entry` through relative imports (including `import()`). */
function reachable(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import\()\s*['"](\.[^'"]+)['"]/g)) {
      visit(path.resolve(path.dirname(file), m[1] as string));
    }
  };
  visit(entry);
  return seen;
}

describe('serving code', () => {
  it('does not import the converter or the checkpoint readers', () => {
    const modules = [...reachable(path.join(SRC, 'main.ts'))];
    expect(modules.some((m) => m.endsWith('engine/worker.ts') || m.endsWith('engine/engine.ts'))).toBe(true);
    const worker = reachable(path.join(SRC, 'engine/worker.ts'));
    const all = [...modules, ...worker].map((m) => path.relative(SRC, m));
    expect(all.filter((m) => m.startsWith('convert/') || m.startsWith('checkpoint/'))).toEqual([]);
  });
});
