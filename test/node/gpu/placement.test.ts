// The placement check of scripts/gpu: onnxruntime's verbose session log, read back.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { graphFiles } from '../../../scripts/gpu/engine-usage.ts';
import { convertFixture } from '../../../scripts/gpu/fixture-checks.ts';
import { fallbackWarnings, judgePlacement, parsePlacements } from '../../../scripts/gpu/placement.ts';
import { probePlacements } from '../../../scripts/gpu/placement-probe.ts';

const V = (id: string, text: string) =>
  `2026-12-07 02:10:36.087563142 [V:onnxruntime:${id}, session_state.cc:1377 VerifyEachNodeIsAssignedToAnEp] ${text}`;

// As onnxruntime 1.30 printed it here for the float16 generation graph of h128-seed4321.
const ALL_CPU = [
  '2026-12-07 02:10:36.087424136 [I:onnxruntime:probe-gen, graph_transformer.cc:15 Apply] GraphTransformer MemcpyTransformer modified: 0 with status: OK',
  V('probe-gen', 'Node placements'),
  V('probe-gen', ' All nodes placed on [CPUExecutionProvider]. Number of nodes: 215'),
  '2026-12-07 02:10:36.088910187 [V:onnxruntime:probe-gen, session_state.cc:186 CreateGraphInfo] SaveMLValueNameIndexMapping',
].join('\n');

// The format onnxruntime uses when more than one provider got nodes (session_state.cc).
const MIXED = [
  V('gen', 'Node placements'),
  V('gen', ' Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2'),
  V('gen', '  Shape (step/shape_0)'),
  V('gen', '  Gather (step/gather (batch))'),
  V('gen', ' Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 3'),
  V('gen', '  MatMul (step/matmul_0)'),
  V('gen', '  MemcpyToHost (Memcpy_token_1)'),
  V('gen', '  Loop (loop)'),
  V('fwd', 'Node placements'),
  V('fwd', ' All nodes placed on [CUDAExecutionProvider]. Number of nodes: 40'),
  '2026-12-07 02:10:37.000000000 [W:onnxruntime:gen, transformer_memcpy.cc:83 ApplyImpl] 1 Memcpy nodes are added to the graph generate for CUDAExecutionProvider. It might have negative impact on performance.',
].join('\n');

describe('placement log', () => {
  it('reads a single-provider placement', () => {
    const p = parsePlacements(ALL_CPU).get('probe-gen');
    expect(p).toEqual({ providers: { CPUExecutionProvider: { count: 215, nodes: [] } }, total: 215 });
    expect(judgePlacement(p, 'CPUExecutionProvider')).toMatchObject({ ok: true, total: 215 });
    // The same log, judged against CUDA: every node fell back.
    const v = judgePlacement(p, 'CUDAExecutionProvider');
    expect(v.ok).toBe(false);
    expect(v.summary).toBe('215 of 215 nodes not on CUDAExecutionProvider (CPUExecutionProvider: all)');
  });

  it('lists the nodes of each provider when they are split, per session', () => {
    const all = parsePlacements(MIXED);
    expect([...all.keys()]).toEqual(['gen', 'fwd']);
    const gen = all.get('gen');
    expect(gen?.total).toBe(5);
    expect(gen?.providers.CPUExecutionProvider?.nodes).toEqual([
      { op: 'Shape', name: 'step/shape_0' },
      { op: 'Gather', name: 'step/gather (batch)' },
    ]);
    const v = judgePlacement(gen, 'CUDAExecutionProvider');
    expect(v).toMatchObject({
      ok: false,
      elsewhere: { CPUExecutionProvider: { Shape: 1, Gather: 1 } },
      memcpy: ['MemcpyToHost (Memcpy_token_1)'],
    });
    expect(v.summary).toContain('2 of 5 nodes not on CUDAExecutionProvider');
    expect(judgePlacement(all.get('fwd'), 'CUDAExecutionProvider').ok).toBe(true);
    expect(fallbackWarnings(MIXED)).toEqual([
      '1 Memcpy nodes are added to the graph generate for CUDAExecutionProvider. It might have negative impact on performance.',
    ]);
  });

  it('fails when the log has no placement at all', () => {
    expect(judgePlacement(parsePlacements('nothing').get('x'), 'CPUExecutionProvider')).toMatchObject({
      ok: false,
      total: 0,
    });
  });
});

const FIXTURE = path.resolve('../shared/fixtures/model/h128-seed4321');

describe.skipIf(!existsSync(FIXTURE))('placement probe (CPU provider, real onnxruntime log)', () => {
  it('finds every node of both graphs on the CPU provider', async () => {
    const root = path.resolve('.cache/gpu-tests');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(root, { recursive: true });
    const work = await mkdtemp(path.join(root, 'probe-'));
    try {
      const dir = await convertFixture(FIXTURE, work, 'float32');
      const g = await graphFiles(dir);
      const probe = await probePlacements(
        'cpu',
        [
          { id: 'gen', graph: g.generate },
          { id: 'fwd', graph: g.forward },
          { id: 'missing', graph: path.join(work, 'nope.onnx') },
        ],
        path.join(work, 'probe.log'),
      );
      const [gen, fwd, missing] = probe.results;
      expect(gen).toMatchObject({ opened: true, verdict: { ok: true, expected: 'CPUExecutionProvider' } });
      expect(gen?.verdict.total).toBeGreaterThan(50);
      expect(fwd?.verdict.ok).toBe(true);
      expect(missing?.opened).toBe(false);
      expect(missing?.verdict.ok).toBe(false);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
