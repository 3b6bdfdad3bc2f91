// Longest-match lookup of USER_DEFINED pieces, as sentencepiece's PrefixMatcher does: at each
// position of the normalized text the longest user-defined piece starting there is taken whole.

import { Kind, type TokenizerTables, textOf } from './tables.ts';

interface TrieNode {
  children: Map<number, TrieNode>;
  /** Id of the user-defined piece ending here, or -1. */
  id: number;
}

export class UserSymbolMatcher {
  /** firstUnits[u] is 1 when some user-defined piece starts with UTF-16 code unit u. */
  readonly firstUnits = new Uint8Array(65536);
  private readonly root: TrieNode = { children: new Map(), id: -1 };

  constructor(tables: TokenizerTables) {
    const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
    for (let id = 0; id < tables.pieceCount; id++) {
      if (tables.kinds[id] !== Kind.USER) continue;
      const piece = decoder.decode(textOf(tables, tables.info[id]!));
      if (piece.length === 0) continue;
      let node = this.root;
      for (let i = 0; i < piece.length; i++) {
        const u = piece.charCodeAt(i);
        let child = node.children.get(u);
        if (!child) {
          child = { children: new Map(), id: -1 };
          node.children.set(u, child);
        }
        node = child;
      }
      node.id = id;
      this.firstUnits[piece.charCodeAt(0)] = 1;
    }
  }

  /**
   * Longest user-defined piece at `start` of `text`, compared after normalization (space as
   * U+2581, lone surrogates as U+FFFD). Returns id * 2^16 + length in code units, or -1.
   */
  match(text: string, start: number): number {
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
