// OpenAI's completion `logprobs` object: per token its text, its log-probability, the most
// likely alternatives at its position ({token text: logprob}) and its offset in the choice's
// text. Token texts are each id decoded alone, for the tokens and the alternatives alike, so a
// client can compare them (lm-evaluation-harness checks a continuation is greedy that way).

import type { WireLogprob } from '../../../shared/src/protocol/generate.ts';

export interface LogprobEntry {
  token: string;
  /** null for a prompt's first token (nothing predicts it). */
  logprob: number | null;
  top: Record<string, number> | null;
  /** In the choice's text. */
  offset: number;
}

export interface LogprobsObject {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/** One entry per id, decoding each alone; offsets run on from `offset`. */
export function logprobEntries(
  ids: readonly number[],
  scores: readonly (WireLogprob | null)[],
  decode: (ids: number[]) => string,
  offset: number,
): LogprobEntry[] {
  let at = offset;
  return ids.map((id, i) => {
    const score = scores[i] ?? null;
    const token = decode([id]);
    const entry: LogprobEntry = {
      token,
      logprob: score ? score.logprob : null,
      top: score ? Object.fromEntries(score.top.map(([alt, lp]) => [decode([alt]), lp])) : null,
      offset: at,
    };
    at += token.length;
    return entry;
  });
}

export function logprobsObject(entries: readonly LogprobEntry[]): LogprobsObject {
  return {
    tokens: entries.map((e) => e.token),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => e.top),
    text_offset: entries.map((e) => e.offset),
  };
}
