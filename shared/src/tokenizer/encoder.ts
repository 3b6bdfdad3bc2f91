// SentencePiece BPE encoding, reproducing bpe_model.cc of sentencepiece for an identity
// normalizer:
//   1. The text is normalized (space -> U+2581) and cut into symbols: at each position the
//      longest user-defined piece is taken whole (and never merged), else one character.
//   2. Adjacent symbols whose concatenation is a piece are merge candidates; the candidate with
//      the highest score is merged first, the leftmost one among equal scores, until none is left.
//   3. A character without a piece becomes the byte pieces of its UTF-8 bytes (byte fallback).
// A merge never crosses a user-defined or unknown symbol, nor the start of a U+2581 when no
// piece holds U+2581 after its first character, so the symbols between such points form words
// that are merged independently, each with a heap as agenda: O(n log n) in the word's length.

import { TokenizerError } from './errors.ts';
import { EMPTY_KEY, NO_ID, type TokenizerTables } from './tables.ts';
import { UserSymbolMatcher } from './user-symbols.ts';

const SPACE_SYMBOL = 0x2581;
const REPLACEMENT_CHARACTER = 0xfffd;
/** Merged-away symbols get this id; no merge key can match it. */
const DEAD = 0x7fffffff;
const RANK_SCALE = 2 ** 32;
/** Scratch arrays above this many symbols are dropped after use. */
const KEPT_SCRATCH = 1 << 16;

/** Growable list of token ids, reused across calls so that encoding allocates almost nothing. */
export class IdList {
  ids = new Uint32Array(256);
  length = 0;

  push(id: number): void {
    if (this.length === this.ids.length) this.grow();
    this.ids[this.length++] = id;
  }

  /** Empties the list, dropping a buffer grown by one huge text. */
  shrink(): void {
    this.length = 0;
    if (this.ids.length > KEPT_SCRATCH) this.ids = new Uint32Array(256);
  }

  private grow(): void {
    const bigger = new Uint32Array(this.ids.length * 2);
    bigger.set(this.ids);
    this.ids = bigger;
  }
}

export class BpeEncoder {
  private readonly t: TokenizerTables;
  private readonly mergeMask: number;
  private readonly mergeShift: number;
  private readonly users: UserSymbolMatcher;

  // Scratch state of the word being merged: symbol ids and a doubly linked list over them.
  private symbols = new Int32Array(64);
  private next = new Int32Array(64);
  private prev = new Int32Array(64);
  private heap = new Float64Array(64);
  private wordLength = 0;

  constructor(tables: TokenizerTables) {
    this.t = tables;
    this.mergeMask = tables.mergeKeys.length - 1;
    this.mergeShift = Math.clz32(this.mergeMask);
    // Lookups stop at an empty slot; a table without one (a damaged file) would never stop.
    if (!tables.mergeKeys.includes(EMPTY_KEY)) throw new TokenizerError('merge table has no empty slot');
    this.users = new UserSymbolMatcher(tables);
  }

  /** Appends the ids of `text` to `out`. */
  encode(text: string, out: IdList): void {
    const users = this.users;
    const splitAtSpace = this.t.spaceStartsWord;
    this.wordLength = 0;
    const n = text.length;
    let i = 0;
    while (i < n) {
      let unit = text.charCodeAt(i);
      if (unit === 0x20) unit = SPACE_SYMBOL;
      let cp = unit;
      let width = 1;
      if (unit >= 0xd800 && unit < 0xe000) {
        const low = text.charCodeAt(i + 1);
        if (unit < 0xdc00 && low >= 0xdc00 && low < 0xe000) {
          cp = (unit - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000;
          width = 2;
        } else {
          // A lone surrogate is read as U+FFFD, as a UTF-8 encoder would write it.
          cp = unit = REPLACEMENT_CHARACTER;
        }
      }
      if (users.mayStartWith(unit)) {
        const m = users.match(text, i);
        if (m >= 0) {
          this.flushWord(out);
          out.push(Math.floor(m / 65536));
          i += m % 65536;
          continue;
        }
      }
      const id = this.charId(cp);
      if (id === NO_ID) {
        this.flushWord(out);
        this.pushBytes(cp, out);
      } else {
        if (cp === SPACE_SYMBOL && splitAtSpace) this.flushWord(out);
        this.addSymbol(id);
      }
      i += width;
    }
    this.flushWord(out);
    // One huge word (a megabyte without a space) must not pin tens of megabytes of scratch.
    if (this.symbols.length > KEPT_SCRATCH) this.releaseScratch();
  }

  private releaseScratch(): void {
    this.symbols = new Int32Array(64);
    this.next = new Int32Array(64);
    this.prev = new Int32Array(64);
    this.heap = new Float64Array(64);
  }

  private charId(cp: number): number {
    const t = this.t;
    if (cp < 0x10000) {
      const block = t.charBlockIndex[cp >> 8]!;
      return block === 0 ? NO_ID : t.charBlocks[(block - 1) * 256 + (cp & 0xff)]!;
    }
    const chars = t.astralChars;
    let lo = 0;
    let hi = chars.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = chars[mid]!;
      if (c === cp) return t.astralIds[mid]!;
      if (c < cp) lo = mid + 1;
      else hi = mid - 1;
    }
    return NO_ID;
  }

  /** Byte fallback: the UTF-8 bytes of an unknown character as byte pieces (or unk without it). */
  private pushBytes(cp: number, out: IdList): void {
    const bytes = this.t.byteIds;
    if (!this.t.byteFallback) {
      out.push(this.t.unkId);
    } else if (cp < 0x80) {
      out.push(bytes[cp]!);
    } else if (cp < 0x800) {
      out.push(bytes[0xc0 | (cp >> 6)]!);
      out.push(bytes[0x80 | (cp & 0x3f)]!);
    } else if (cp < 0x10000) {
      out.push(bytes[0xe0 | (cp >> 12)]!);
      out.push(bytes[0x80 | ((cp >> 6) & 0x3f)]!);
      out.push(bytes[0x80 | (cp & 0x3f)]!);
    } else {
      out.push(bytes[0xf0 | (cp >> 18)]!);
      out.push(bytes[0x80 | ((cp >> 12) & 0x3f)]!);
      out.push(bytes[0x80 | ((cp >> 6) & 0x3f)]!);
      out.push(bytes[0x80 | (cp & 0x3f)]!);
    }
  }

  private addSymbol(id: number): void {
    if (this.wordLength === this.symbols.length) {
      const size = this.symbols.length * 2;
      this.symbols = grow(this.symbols, size);
      this.next = new Int32Array(size);
      this.prev = new Int32Array(size);
    }
    this.symbols[this.wordLength++] = id;
  }

  /** Merges the pending word and appends its ids. */
  private flushWord(out: IdList): void {
    const count = this.wordLength;
    if (count === 0) return;
    this.wordLength = 0;
    this.merge(count);
    const symbols = this.symbols;
    const next = this.next;
    for (let s = 0; s !== -1; s = next[s]!) out.push(symbols[s]!);
  }

  /** Id of the piece merging `left` and `right`, or NO_ID. */
  private lookup(left: number, right: number): number {
    if (left >= 0xffff || right >= 0xffff) return NO_ID;
    const keys = this.t.mergeKeys;
    const mask = this.mergeMask;
    const key = left * 65536 + right;
    let slot = Math.imul(key, 0x9e3779b1) >>> this.mergeShift;
    for (;;) {
      const k = keys[slot]!;
      if (k === key) return this.t.mergeIds[slot]!;
      if (k === EMPTY_KEY) return NO_ID;
      slot = (slot + 1) & mask;
    }
  }

  /** BPE over symbols[0, count): sentencepiece's agenda, as a min-heap of rank * 2^32 + left. */
  private merge(count: number): void {
    const symbols = this.symbols;
    const next = this.next;
    const prev = this.prev;
    const ranks = this.t.ranks;
    for (let s = 0; s < count; s++) {
      prev[s] = s - 1;
      next[s] = s + 1;
    }
    next[count - 1] = -1;
    // The heap holds at most the initial pairs plus one per merge; push() grows it if needed.
    if (this.heap.length < count + 16) this.heap = new Float64Array(count + 16);
    const heap = this.heap;
    let size = 0;
    for (let s = 0; s + 1 < count; s++) {
      const merged = this.lookup(symbols[s]!, symbols[s + 1]!);
      if (merged !== NO_ID) heap[size++] = ranks[merged]! * RANK_SCALE + s;
    }
    for (let i = (size - 2) >> 2; i >= 0; i--) this.siftDown(i, heap[i]!, size);
    while (size > 0) {
      const top = this.heap[0]!;
      size = this.pop(size);
      const rank = Math.floor(top / RANK_SCALE);
      const left = top - rank * RANK_SCALE;
      const right = next[left]!;
      if (right < 0) continue;
      // Stale candidates (a side was merged since) no longer name a piece of this rank.
      const merged = this.lookup(symbols[left]!, symbols[right]!);
      if (merged === NO_ID || ranks[merged] !== rank) continue;
      symbols[left] = merged;
      symbols[right] = DEAD;
      const after = next[right]!;
      next[left] = after;
      if (after >= 0) prev[after] = left;
      const before = prev[left]!;
      if (before >= 0) {
        const m = this.lookup(symbols[before]!, merged);
        if (m !== NO_ID) size = this.push(size, ranks[m]! * RANK_SCALE + before);
      }
      if (after >= 0) {
        const m = this.lookup(merged, symbols[after]!);
        if (m !== NO_ID) size = this.push(size, ranks[m]! * RANK_SCALE + left);
      }
    }
  }

  // A 4-ary min-heap: half the depth of a binary heap, and a node's children share a cache line.

  private push(size: number, value: number): number {
    if (size === this.heap.length) this.heap = grow(this.heap, size * 2);
    const heap = this.heap;
    let i = size;
    while (i > 0) {
      const parent = (i - 1) >> 2;
      const p = heap[parent]!;
      if (p <= value) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = value;
    return size + 1;
  }

  private pop(size: number): number {
    size--;
    if (size > 0) this.siftDown(0, this.heap[size]!, size);
    return size;
  }

  /** Places `value` at node `i` or below, moving smaller children up. */
  private siftDown(i: number, value: number, size: number): void {
    const heap = this.heap;
    for (;;) {
      const first = 4 * i + 1;
      if (first >= size) break;
      let child = first;
      let smallest = heap[first]!;
      const last = Math.min(first + 4, size);
      for (let c = first + 1; c < last; c++) {
        const v = heap[c]!;
        if (v < smallest) {
          smallest = v;
          child = c;
        }
      }
      if (smallest >= value) break;
      heap[i] = smallest;
      i = child;
    }
    heap[i] = value;
  }
}

function grow<T extends Int32Array | Float64Array>(a: T, size: number): T {
  const bigger = new (a.constructor as new (n: number) => T)(size);
  bigger.set(a);
  return bigger;
}
