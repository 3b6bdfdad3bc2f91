// OpenAI's chat completion objects: `chat.completion`, and the `chat.completion.chunk` events of
// a stream (each choice opens with the assistant's role, then `delta.content` pieces, then an
// empty delta with its finish_reason).

import { MODEL_ID } from '../../../shared/src/model-facts.ts';
import { type CompletionIdentity, type FinishReason, newCompletionIdentity } from '../completions/format.ts';
import type { AnswerShape } from '../completions/shape.ts';

const encoder = new TextEncoder();
const sse = (data: unknown) => encoder.encode(`data: ${JSON.stringify(data)}\n\n`);

type Delta = { role: 'assistant'; content: string } | { content: string } | Record<string, never>;

export const CHAT_COMPLETION: AnswerShape = {
  identity: (systemFingerprint) => newCompletionIdentity(systemFingerprint, 'chatcmpl'),

  body: (who, choices, usage) => ({
    id: who.id,
    object: 'chat.completion',
    created: who.created,
    model: MODEL_ID,
    system_fingerprint: who.systemFingerprint,
    choices: choices.map((c, index) => ({
      index,
      message: { role: 'assistant', content: c.text, refusal: null },
      logprobs: null,
      finish_reason: c.finish,
    })),
    usage,
  }),

  opening: (who, index, _echo, includeUsage) =>
    chunk(who, index, { role: 'assistant', content: '' }, null, includeUsage),

  chunk: (who, index, text, finish, includeUsage) =>
    chunk(who, index, text === '' ? {} : { content: text }, finish, includeUsage),

  usage: (who, usage) =>
    sse({
      id: who.id,
      object: 'chat.completion.chunk',
      created: who.created,
      model: MODEL_ID,
      system_fingerprint: who.systemFingerprint,
      choices: [],
      usage,
    }),
};

function chunk(
  who: CompletionIdentity,
  index: number,
  delta: Delta,
  finish: FinishReason | null,
  includeUsage: boolean,
): Uint8Array {
  return sse({
    id: who.id,
    object: 'chat.completion.chunk',
    created: who.created,
    model: MODEL_ID,
    system_fingerprint: who.systemFingerprint,
    choices: [{ index, delta, logprobs: null, finish_reason: finish }],
    ...(includeUsage ? { usage: null } : {}),
  });
}
