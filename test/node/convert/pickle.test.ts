// The pickle VM on hand-assembled programs: the opcodes torch.save and newer picklers emit,
// and clear failures on anything else.

import { describe, expect, it } from 'vitest';
import {
  PickleError,
  type PyTuple,
  type UnpickleHooks,
  unpickle,
} from '../../../gpu-function/src/checkpoint/pickle.ts';

const plain: UnpickleHooks = {
  findClass: (module, name) => `${module}.${name}`,
  call: (callable, args) => ({ callable, args }),
  persistentLoad: (pid) => ({ pid }),
};

const bytes = (...parts: (number | string)[]) =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'number' ? [p] : [...Buffer.from(p, 'latin1')])));
const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];

describe('unpickle', () => {
  it('decodes integers of every width, including LONG1 beyond 32 bits and negatives', () => {
    // [1, 300, -2, 2**31, -(2**40), 2**70] as a list built with MARK ... LIST
    const program = bytes(
      0x80,
      2,
      0x28,
      0x4b,
      1,
      0x4d,
      0x2c,
      0x01,
      0x4a,
      ...u32(0xfffffffe),
      0x8a,
      5,
      0,
      0,
      0,
      0x80,
      0,
      0x8a,
      6,
      0,
      0,
      0,
      0,
      0,
      0xff,
      0x8a,
      9,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0x40,
      0x6c,
      0x2e,
    );
    expect(unpickle(program, plain)).toEqual([1, 300, -2, 2 ** 31, -(2 ** 40), 2n ** 70n]);
  });

  it('builds dicts, tuples, memo references and booleans as torch.save writes them', () => {
    // {'a': ('x', 'x', True), 'b': None}, with 'x' stored once and fetched with BINGET
    const program = bytes(
      0x80,
      2,
      0x7d,
      0x71,
      0,
      0x28,
      0x58,
      ...u32(1),
      'a',
      0x71,
      1,
      0x58,
      ...u32(1),
      'x',
      0x71,
      2,
      0x68,
      2,
      0x88,
      0x87,
      0x71,
      3,
      0x58,
      ...u32(1),
      'b',
      0x71,
      4,
      0x4e,
      0x75,
      0x2e,
    );
    const result = unpickle(program, plain) as Map<string, unknown>;
    expect(result).toBeInstanceOf(Map);
    expect([...result.keys()]).toEqual(['a', 'b']);
    expect((result.get('a') as PyTuple).items).toEqual(['x', 'x', true]);
    expect(result.get('b')).toBeNull();
  });

  it('routes GLOBAL, REDUCE, BINPERSID and BUILD through the hooks', () => {
    // torch._utils._rebuild_tensor_v2((persistent 'key',), 7) then BUILD with state {} on a dict
    const seen: unknown[] = [];
    const hooks: UnpickleHooks = {
      findClass: (m, n) => `${m}.${n}`,
      call: (callable, args) => ({ callable, args: [...args] }),
      persistentLoad: (pid) => ({ storage: (pid as PyTuple).items[0] }),
      build: (target, state) => seen.push([target, state]),
    };
    const program = bytes(
      0x80,
      2,
      0x63,
      'torch._utils\n_rebuild_tensor_v2\n',
      0x58,
      ...u32(3),
      'key',
      0x85,
      0x51,
      0x4b,
      7,
      0x86,
      0x52,
      0x7d,
      0x62,
      0x2e,
    );
    expect(unpickle(program, hooks)).toEqual({
      callable: 'torch._utils._rebuild_tensor_v2',
      args: [{ storage: 'key' }, 7],
    });
    expect(seen).toHaveLength(1);
  });

  it('understands protocol 4 framing, SHORT_BINUNICODE, MEMOIZE and STACK_GLOBAL', () => {
    const program = bytes(
      0x80,
      4,
      0x95,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0x8c,
      11,
      'collections',
      0x94,
      0x8c,
      11,
      'OrderedDict',
      0x94,
      0x93,
      0x94,
      0x29,
      0x52,
      0x94,
      0x8c,
      1,
      'k',
      0x94,
      0x68,
      0,
      0x73,
      0x2e,
    );
    const result = unpickle(program, { ...plain, call: () => new Map() }) as Map<string, unknown>;
    expect(result.get('k')).toBe('collections');
  });

  it('fails clearly on unknown opcodes, truncation, stack underflow and missing memo keys', () => {
    expect(() => unpickle(bytes(0x80, 2, 0xff), plain)).toThrow(/unsupported opcode 0xff at byte 2/);
    expect(() => unpickle(bytes(0x80, 2, 0x58, ...u32(10), 'ab'), plain)).toThrow(/unexpected end of data/);
    expect(() => unpickle(bytes(0x80, 2, 0x86), plain)).toThrow(/stack underflow/);
    expect(() => unpickle(bytes(0x80, 2, 0x68, 9, 0x2e), plain)).toThrow(/memo key 9 not set/);
    expect(() => unpickle(bytes(0x80, 2, 0x4b, 1), plain)).toThrow(PickleError);
    // A MARK hides what is below it: TUPLE2 right after MARK must not reach past it.
    expect(() => unpickle(bytes(0x80, 2, 0x4b, 1, 0x4b, 2, 0x28, 0x86), plain)).toThrow(/stack underflow/);
  });

  it('lets the hooks refuse globals (nothing is ever imported or run)', () => {
    const strict: UnpickleHooks = {
      ...plain,
      findClass: (m, n) => {
        throw new PickleError(`refused ${m}.${n}`);
      },
    };
    expect(() => unpickle(bytes(0x80, 2, 0x63, 'os\nsystem\n'), strict)).toThrow(/refused os\.system/);
  });
});

describe('unpickle on hostile programs', () => {
  const u32le = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];

  it('decodes a 300 kB integer in linear time', () => {
    const n = 300_000;
    const program = new Uint8Array(2 + 5 + n + 1);
    program.set([0x80, 2, 0x8b, ...u32le(n)]);
    program[7 + n - 1] = 0x01; // 256^(n-1): positive, n bytes
    program[7 + n] = 0x2e;
    const t0 = performance.now();
    const v = unpickle(program, plain) as bigint;
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(typeof v).toBe('bigint');
    expect(v === 1n << BigInt(8 * (n - 1))).toBe(true);
  });

  it('refuses a text INT longer than Python itself converts', () => {
    const digits = '7'.repeat(5000);
    expect(() => unpickle(bytes(0x80, 2, 0x49, `${digits}\n`, 0x2e), plain)).toThrow(PickleError);
    expect(unpickle(bytes(0x80, 2, 0x49, `-${'9'.repeat(30)}\n`, 0x2e), plain)).toBe(-(10n ** 30n - 1n));
  });

  it('appends 300,000 items at once (APPENDS), and fails only with PickleError', () => {
    const count = 300_000;
    const program = new Uint8Array(4 + 2 * count + 2);
    program.set([0x80, 2, 0x5d, 0x28]); // PROTO 2, EMPTY_LIST, MARK
    for (let i = 0; i < count; i++) program.set([0x4b, i & 0xff], 4 + 2 * i); // BININT1 i
    program.set([0x65, 0x2e], 4 + 2 * count); // APPENDS, STOP
    const list = unpickle(program, plain) as number[];
    expect(list).toHaveLength(count);
    expect(list[count - 1]).toBe((count - 1) & 0xff);
    // The same items as a tuple of a list that is not there: a PickleError, nothing else.
    const broken = program.slice();
    broken[2] = 0x4e; // NONE instead of EMPTY_LIST
    expect(() => unpickle(broken, plain)).toThrow(PickleError);
  });
});
