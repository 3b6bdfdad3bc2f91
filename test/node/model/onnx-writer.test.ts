import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  attr,
  encodeModel,
  float32ToFloat16Bits,
  GraphBuilder,
} from '../../../gpu-function/src/model/onnx/index.ts';

const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1 };

let dir: string;
beforeAll(async () => {
  await mkdir(path.resolve('.cache'), { recursive: true });
  dir = await mkdtemp(path.join(path.resolve('.cache'), 'onnx-writer-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function session(g: GraphBuilder, file: string): Promise<ort.InferenceSession> {
  const p = path.join(dir, file);
  await writeFile(p, encodeModel(g.model()));
  return ort.InferenceSession.create(p, SESSION_OPTIONS);
}

describe('ONNX writer', () => {
  it('writes a graph with symbolic dims, embedded weights and typed attributes that onnxruntime runs', async () => {
    const g = new GraphBuilder('affine');
    const x = g.input('x', 'float32', ['batch', 3]);
    const w = g.initializer('w', 'float32', [3, 2], Float32Array.from([1, 2, 3, 4, 5, 6]));
    const y = g.op('MatMul', [x, w]);
    const scaled = g.op('Mul', [y, g.scalar('float32', 0.5)]);
    const normed = g.op('LayerNormalization', [scaled, g.ones('float32', 2), g.zeros('float32', 2)], {
      axis: -1,
      epsilon: attr.float(1),
    });
    g.output('y', scaled, 'float32', ['batch', 2]);
    g.output('n', normed, 'float32', ['batch', 2]);
    const s = await session(g, 'affine.onnx');
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 0, 0, 1, 1, 1]), [2, 3]) });
    expect(Array.from(out.y?.data as Float32Array)).toEqual([0.5, 1, 4.5, 6]);
    // LayerNorm of (a, b) with epsilon 1: (±d/2) / sqrt(d²/4 + 1).
    const d = 0.5;
    const expected = d / 2 / Math.sqrt((d * d) / 4 + 1);
    const n = Array.from(out.n?.data as Float32Array);
    expect(n[0]).toBeCloseTo(-expected, 6);
    expect(n[1]).toBeCloseTo(expected, 6);
    await s.release();
  });

  it('reads external initializers at any offset inside the model folder', async () => {
    const values = Float32Array.from([10, 20, 30, 40]);
    const blob = new Uint8Array(7 + values.byteLength);
    blob.set(new Uint8Array(values.buffer), 7); // deliberately unaligned
    await writeFile(path.join(dir, 'weights.bin'), blob);
    const g = new GraphBuilder('external');
    const x = g.input('x', 'float32', [2, 2]);
    const w = g.externalInitializer('w', 'float32', [2, 2], {
      location: 'weights.bin',
      offset: 7,
      length: 16,
    });
    g.output('y', g.op('Add', [x, w]), 'float32', [2, 2]);
    const s = await session(g, 'external.onnx');
    const out = await s.run({ x: new ort.Tensor('float32', new Float32Array(4), [2, 2]) });
    expect(Array.from(out.y?.data as Float32Array)).toEqual([10, 20, 30, 40]);
    await s.release();
  });

  it('writes Loop bodies that see main-graph initializers and carry state', async () => {
    const g = new GraphBuilder('loop');
    const start = g.input('start', 'float32', [2]);
    const trips = g.input('trips', 'int64', []);
    const step = g.initializer('step', 'float32', [2], Float32Array.from([1, -2]));
    const body = g.subgraph('body');
    const i = body.input('i', 'int64', []);
    const cond = body.input('cond_in', 'bool', []);
    const acc = body.input('acc', 'float32', [2]);
    const next = body.op('Add', [acc, step]);
    body.output('cond_out', body.op('Identity', [cond]), 'bool', []);
    body.output('acc_out', next, 'float32', [2]);
    body.output('iter', body.op('Cast', [i], { to: 1 }), 'float32', []);
    const [final, iters] = g.ops('Loop', [trips, '', start], 2, { body });
    g.output('final', final as string, 'float32', [2]);
    g.output('iters', iters as string, 'float32', ['n']);
    const s = await session(g, 'loop.onnx');
    const out = await s.run({
      start: new ort.Tensor('float32', Float32Array.from([0, 0]), [2]),
      trips: new ort.Tensor('int64', BigInt64Array.from([3n]), []),
    });
    expect(Array.from(out.final?.data as Float32Array)).toEqual([3, -6]);
    expect(Array.from(out.iters?.data as Float32Array)).toEqual([0, 1, 2]);
    await s.release();
  });

  it('runs com.microsoft contrib ops and negative int64 attributes', async () => {
    const g = new GraphBuilder('contrib');
    const x = g.input('x', 'float32', [1, 2, 4]);
    const skip = g.input('skip', 'float32', [1, 2, 4]);
    const [sum] = g.ops(
      'SkipLayerNormalization',
      [x, skip, g.ones('float32', 4), g.zeros('float32', 4)],
      1,
      { epsilon: 1e-5 },
      { domain: 'com.microsoft' },
    );
    const last = g.op('Gather', [sum as string, g.constant('int64', [], [-1])], { axis: -1 });
    g.output('last', last, 'float32', [1, 2]);
    const s = await session(g, 'contrib.onnx');
    const data = Float32Array.from([1, 2, 3, 4, 0, 0, 0, 8]);
    const out = await s.run({
      x: new ort.Tensor('float32', data, [1, 2, 4]),
      skip: new ort.Tensor('float32', new Float32Array(8), [1, 2, 4]),
    });
    const got = Array.from(out.last?.data as Float32Array);
    expect(got[0]).toBeCloseTo(1.5 / Math.sqrt(1.25 + 1e-5), 5);
    expect(got[1]).toBeCloseTo(6 / Math.sqrt(12 + 1e-5), 5);
    await s.release();
  });

  it('refuses a body name that would shadow a main-graph name', () => {
    const g = new GraphBuilder();
    g.input('x', 'float32', [1]);
    const body = g.subgraph('body');
    expect(() => body.input('x', 'float32', [1])).toThrow(/already defined/);
  });

  it('rounds float16 like IEEE (nearest even, subnormals, overflow)', () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(70000)).toBe(0x7c00);
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001);
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie rounds to even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });
});
