// OpenAI's completion objects: the whole response, and the chunks of a stream.

import { MODEL_ID } from '../../../shared/src/model-facts.ts';
import { type LogprobEntry, logprobsObject } from './logprobs.ts';

/** OpenAI's finish reasons that this API produces. */
export type FinishReason = 'stop' | 'length';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export const usageOf = (promptTokens: number, completionTokens: number): Usage => ({
  prompt_tokens: promptTokens,
  completion_tokens: completionTokens,
  total_tokens: promptTokens + completionTokens,
});

export interface CompletionIdentity {
  id: string;
  created: number;
  /** The model build that answers (settings.ts, MODEL_BUILD). */
  systemFingerprint: string;
}

export function newCompletionIdentity(systemFingerprint: string, prefix = 'cmpl'): CompletionIdentity {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  const id = `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  return { id, created: Math.floor(Date.now() / 1000), systemFingerprint };
}

/** The whole answer; choice i is at index i. */
export function completionBody(
  who: CompletionIdentity,
  choices: readonly { text: string; finish: FinishReason; logprobs?: readonly LogprobEntry[] }[],
  usage: Usage,
) {
  return {
    id: who.id,
    object: 'text_completion',
    created: who.created,
    model: MODEL_ID,
    system_fingerprint: who.systemFingerprint,
    choices: choices.map((c, index) => ({
      text: c.text,
      index,
      logprobs: c.logprobs ? logprobsObject(c.logprobs) : null,
      finish_reason: c.finish,
    })),
    usage,
  };
}

const encoder = new TextEncoder();
const sse = (data: unknown) => encoder.encode(`data: ${JSON.stringify(data)}\n\n`);

export const SSE_KEEP_ALIVE = encoder.encode(': keep-alive\n\n');
export const SSE_DONE = encoder.encode('data: [DONE]\n\n');

/** A text chunk; with include_usage every chunk carries `usage: null` and a last chunk the totals. */
export function chunkEvent(
  who: CompletionIdentity,
  index: number,
  text: string,
  finish: FinishReason | null,
  includeUsage: boolean,
  logprobs?: readonly LogprobEntry[],
): Uint8Array {
  return sse({
    id: who.id,
    object: 'text_completion',
    created: who.created,
    model: MODEL_ID,
    system_fingerprint: who.systemFingerprint,
    choices: [{ text, index, logprobs: logprobs ? logprobsObject(logprobs) : null, finish_reason: finish }],
    ...(includeUsage ? { usage: null } : {}),
  });
}

export function usageEvent(who: CompletionIdentity, usage: Usage): Uint8Array {
  return sse({
    id: who.id,
    object: 'text_completion',
    created: who.created,
    model: MODEL_ID,
    system_fingerprint: who.systemFingerprint,
    choices: [],
    usage,
  });
}

export const errorEvent = (error: { error: unknown }) => sse(error);
