// A minimal pickle virtual machine: enough opcodes for what torch.save writes (protocol 2,
// plus the protocol 3/4 forms a newer pickler may use). It never imports or runs anything:
// globals, calls and persistent ids are resolved by the caller's hooks, which decide what is
// allowed. Python values map to: None -> null, bool, int -> number (bigint past 2^53),
// float, str, bytes -> Uint8Array, list -> array, tuple -> PyTuple, dict -> Map.

export class PickleError extends Error {
  override name = 'PickleError';
}

export class PyTuple {
  readonly items: readonly unknown[];
  constructor(items: readonly unknown[]) {
    this.items = items;
  }
}

export interface UnpickleHooks {
  /** GLOBAL / STACK_GLOBAL: return a value standing for `module.name`, or throw if not allowed. */
  findClass(module: string, name: string): unknown;
  /** REDUCE and NEWOBJ: apply a callable found by findClass to its arguments. */
  call(callable: unknown, args: readonly unknown[]): unknown;
  /** BINPERSID: turn a persistent id into an object. */
  persistentLoad(pid: unknown): unknown;
  /** BUILD: set an object's state; default: allowed only on dicts, ignored. */
  build?(target: unknown, state: unknown): void;
}

const MAX_MEMO_INDEX = 1 << 24;
/** As Python's own int/str conversion limit: no checkpoint needs more, and parsing is not linear. */
const MAX_INT_DIGITS = 4300;

function asSafeNumber(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/**
 * Little-endian two's-complement integer, as LONG1/LONG4 store it. Built as one hex string and
 * parsed once: shifting a BigInt byte by byte is quadratic (100 KB took seconds).
 */
function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  const digits = new Array<string>(bytes.length);
  for (let i = 0; i < bytes.length; i++) digits[i] = HEX[bytes[bytes.length - 1 - i]!]!;
  let v = BigInt(`0x${digits.join('')}`);
  if (bytes[bytes.length - 1]! & 0x80) v -= 1n << BigInt(8 * bytes.length);
  return asSafeNumber(v);
}

/** Appends without spreading: a spread of a few hundred thousand items overflows the stack. */
function pushAll(target: unknown[], items: readonly unknown[]): void {
  for (const item of items) target.push(item);
}

export function unpickle(data: Uint8Array, hooks: UnpickleHooks): unknown {
  try {
    return run(data, hooks);
  } catch (err) {
    // Whatever a hostile program makes the engine throw (too deep, too large) is a bad pickle.
    if (err instanceof RangeError) throw new PickleError(`pickle: ${err.message}`);
    throw err;
  }
}

function run(data: Uint8Array, hooks: UnpickleHooks): unknown {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;

  const fail = (what: string): never => {
    throw new PickleError(`pickle: ${what} at byte ${pos}`);
  };
  const need = (n: number): void => {
    if (pos + n > data.length) fail('unexpected end of data');
  };
  const u8 = (): number => {
    need(1);
    return data[pos++]!;
  };
  const u16 = (): number => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(data.length)) fail('length out of range');
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => {
    need(n);
    const b = data.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('unterminated text argument');
    const s = latin1.decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const text = (n: number): string => {
    const raw = bytes(n);
    try {
      return utf8.decode(raw);
    } catch {
      return fail('invalid UTF-8 string');
    }
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1]!)) {
      fail('stack underflow');
    }
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) return fail('missing MARK');
    return stack.splice(m);
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) fail(`memo key ${i} not set`);
    return memo.get(i);
  };
  const memoPut = (i: number): void => {
    if (i > MAX_MEMO_INDEX) fail(`memo key ${i} too large`);
    memo.set(i, top());
  };
  const dictOf = (target: unknown): Map<unknown, unknown> => {
    if (!(target instanceof Map)) return fail('SETITEM(S) on something that is not a dict');
    return target;
  };
  const listOf = (target: unknown): unknown[] => {
    if (!Array.isArray(target)) return fail('APPEND(S) on something that is not a list');
    return target;
  };
  const argsOf = (v: unknown): readonly unknown[] => {
    if (!(v instanceof PyTuple)) return fail('call arguments are not a tuple');
    return v.items;
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('unsupported pickle protocol');
        break;
      case 0x95: // FRAME: a length hint only
        bytes(8);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail('STOP with a stack of size other than 1');
        return stack[0];
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(decodeLong(bytes(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(decodeLong(bytes(u32())));
        break;
      case 0x49: {
        // INT (text): also encodes True/False as 01/00
        const s = line();
        if (s === '01' || s === '00') stack.push(s === '01');
        else if (/^-?\d+$/.test(s)) {
          if (s.length > MAX_INT_DIGITS) fail(`INT of more than ${MAX_INT_DIGITS} digits`);
          stack.push(asSafeNumber(BigInt(s)));
        } else fail('bad INT');
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text(u64()));
        break;
      case 0x55: // SHORT_BINSTRING (Python 2 str, decoded as torch.load does: utf-8)
        stack.push(text(u8()));
        break;
      case 0x54: // BINSTRING
        stack.push(text(u32()));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(bytes(u8()).slice());
        break;
      case 0x42: // BINBYTES
        stack.push(bytes(u32()).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(bytes(u64()).slice());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        stack.push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(new PyTuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(new PyTuple([a, b, c]));
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        listOf(top()).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        pushAll(listOf(top()), items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        const m = new Map<unknown, unknown>();
        for (let i = 0; i + 1 < items.length; i += 2) m.set(items[i], items[i + 1]);
        stack.push(m);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        dictOf(top()).set(k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2 !== 0) fail('SETITEMS with an odd number of items');
        const d = dictOf(top());
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        break;
      }
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const module = line();
        const name = line();
        stack.push(hooks.findClass(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(hooks.findClass(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = argsOf(pop());
        const callable = pop();
        stack.push(hooks.call(callable, args));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        const args = argsOf(pop());
        const cls = pop();
        stack.push(hooks.call(cls, args));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const target = top();
        if (hooks.build) hooks.build(target, state);
        else if (!(target instanceof Map)) fail('BUILD on an object that is not a dict');
        break;
      }
      case 0x51: // BINPERSID
        stack.push(hooks.persistentLoad(pop()));
        break;
      case 0x71: // BINPUT
        memoPut(u8());
        break;
      case 0x72: // LONG_BINPUT
        memoPut(u32());
        break;
      case 0x94: // MEMOIZE
        memoPut(memo.size);
        break;
      case 0x70: // PUT (text)
        memoPut(Number.parseInt(line(), 10));
        break;
      case 0x68: // BINGET
        stack.push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(u32()));
        break;
      case 0x67: // GET (text)
        stack.push(memoGet(Number.parseInt(line(), 10)));
        break;
      default:
        pos--;
        fail(`unsupported opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}
