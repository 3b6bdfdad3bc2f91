// Longest-match lookup of USER_DEFINED pieces, as sentencepiece's PrefixMatcher does: at each
// position of the normalized text the longest user-defined piece starting there is taken whole.

import { Kind, type TokenizerTables, textOf } from './tables.ts';
import { codePointAt } from './utf8.ts';

interface TrieNode {
  children: Map<number, TrieNode>;
  /** Id of the user-defined piece ending here, or -1. */
  id: number;
}

export class UserSymbolMatcher {
  /** Bit u is set when some user-defined piece starts with UTF-16 code unit u. */
  private readonly firstUnits = new Uint32Array(2048);
  private readonly tables: TokenizerTables;
  /** Built on the first possible match, so that loading stays cheap. */
  private root: TrieNode | undefined;

  constructor(tables: TokenizerTables) {
    this.tables = tables;
    for (const id of this.userIds()) {
      const text = textOf(tables, tables.info[id]!);
      if (text.length === 0) continue;
      const cp = codePointAt(text, 0, text.length);
      const unit = cp < 0x10000 ? cp : 0xd800 + ((cp - 0x10000) >> 10);
      this.firstUnits[unit >>> 5]! |= 1 << (unit & 31);
    }
  }

  /** True when a user-defined piece may start with this (normalized) code unit. */
  mayStartWith(unit: number): boolean {
    return ((this.firstUnits[unit >>> 5]! >>> (unit & 31)) & 1) === 1;
  }

  /**
   * Longest user-defined piece at `start` of `text`, compared after normalization (space as
   * U+2581, lone surrogates as U+FFFD). Returns id * 2^16 + length in code units, or -1.
   */
  match(text: string, start: number): number {
    this.root ??= this.buildTrie();
    let node = this.root;
    let best = -1;
    for (let i = start; i < text.length; i++) {
      const next = node.children.get(normalizedUnit(text, i));
      if (!next) break;
      node = next;
      if (node.id >= 0) best = node.id * 65536 + (i + 1 - start);
    }
    return best;
  }

  /** Ids of USER_DEFINED pieces; indexOf scans natively, where a loop over every id would run cold. */
  private *userIds(): Generator<number> {
    const kinds = this.tables.kinds;
    for (let id = kinds.indexOf(Kind.USER); id >= 0; id = kinds.indexOf(Kind.USER, id + 1)) yield id;
  }

  private buildTrie(): TrieNode {
    const root: TrieNode = { children: new Map(), id: -1 };
    const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
    for (const id of this.userIds()) {
      const piece = decoder.decode(textOf(this.tables, this.tables.info[id]!));
      let node = root;
      for (let i = 0; i < piece.length; i++) {
        const u = piece.charCodeAt(i);
        let child = node.children.get(u);
        if (!child) {
          child = { children: new Map(), id: -1 };
          node.children.set(u, child);
        }
        node = child;
      }
      if (piece.length > 0) node.id = id;
    }
    return root;
  }
}

/** The UTF-16 code unit the normalizer sees at `i`: space escaped, lone surrogates replaced. */
export function normalizedUnit(text: string, i: number): number {
  const u = text.charCodeAt(i);
  if (u === 0x20) return 0x2581;
  if (u < 0xd800 || u > 0xdfff) return u;
  if (u < 0xdc00) return isLow(text.charCodeAt(i + 1)) ? u : 0xfffd;
  return i > 0 && isHigh(text.charCodeAt(i - 1)) ? u : 0xfffd;
}

const isHigh = (u: number) => u >= 0xd800 && u < 0xdc00;
const isLow = (u: number) => u >= 0xdc00 && u < 0xe000;
