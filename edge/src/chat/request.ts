// A chat request as the completion it amounts to: the messages become one prompt through the
// chat template, chat-only fields are checked and dropped, and everything else goes to the
// completions parser unchanged, so chat takes every parameter completions takes, with the same
// bounds and errors.

import { badRequest } from '../../../shared/src/errors.ts';
import { CONTEXT_LENGTH } from '../../../shared/src/model-facts.ts';
import { MAX_CODE_UNITS_PER_TOKEN } from '../completions/encode.ts';
import { isPlainObject, requireObject } from '../http/fields.ts';
import type { EdgeTokenizer } from '../tokenizer.ts';
import { parseMessages } from './messages.ts';
import { type ChatTemplate, renderChat } from './template.ts';

/**
 * max_tokens of a chat request that sends none (OpenAI's is the rest of the context; that much
 * would be reserved against the key's tokens per minute for every request), at most the context
 * left after the prompt.
 */
export const CHAT_DEFAULT_MAX_TOKENS = 512;

/** Chat fields with no completions counterpart: accepted at the value that asks for nothing. */
const CHAT_ONLY: Record<string, { ok: (v: unknown) => boolean; why: string }> = {
  logprobs: { ok: (v) => v === false, why: 'is not supported on chat completions; use /v1/completions' },
  top_logprobs: { ok: (v) => v === 0, why: 'is not supported on chat completions; use /v1/completions' },
  response_format: {
    ok: (v) => isPlainObject(v) && v.type === 'text' && Object.keys(v).length === 1,
    why: "supports only {'type': 'text'}: this base model cannot be constrained to a format",
  },
  tools: {
    ok: (v) => Array.isArray(v) && v.length === 0,
    why: 'is not supported: this base model has no function calling',
  },
  functions: {
    ok: (v) => Array.isArray(v) && v.length === 0,
    why: 'is not supported: this base model has no function calling',
  },
  tool_choice: { ok: (v) => v === 'none' || v === 'auto', why: "may only be 'none' (there are no tools)" },
  function_call: { ok: (v) => v === 'none' || v === 'auto', why: "may only be 'none' (there are no tools)" },
  parallel_tool_calls: { ok: (v) => typeof v === 'boolean', why: 'must be a boolean' },
  store: { ok: (v) => v === false, why: 'is not supported (completions are not stored)' },
  modalities: {
    ok: (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text',
    why: "supports only ['text']",
  },
};

/** Completions fields a chat request does not have. */
const COMPLETIONS_ONLY = ['prompt', 'echo', 'suffix', 'best_of'];

export interface TranslatedChat {
  /** The completions request body the chat request amounts to. */
  body: Record<string, unknown>;
  /** For errors about that body: the chat field each renamed parameter came from. */
  fieldOf: Record<string, string>;
}

/** The completions body of a chat request: its prompt tokenized, so max_tokens can fit. */
export function translateChat(
  raw: unknown,
  template: ChatTemplate,
  tokenizer: EdgeTokenizer,
): TranslatedChat {
  const body = requireObject(raw);
  for (const field of COMPLETIONS_ONLY) {
    if (field in body) throw badRequest(`Unrecognized request argument supplied: ${field}`, field);
  }
  for (const [field, rule] of Object.entries(CHAT_ONLY)) {
    const v = body[field];
    if (v !== undefined && v !== null && !rule.ok(v)) throw badRequest(`'${field}' ${rule.why}.`, field);
  }
  const messages = parseMessages(body.messages);

  const fieldOf: Record<string, string> = { prompt: 'messages' };
  let maxTokens = body.max_tokens;
  const newer = body.max_completion_tokens;
  if (newer !== undefined && newer !== null) {
    if (maxTokens !== undefined && maxTokens !== null && maxTokens !== newer) {
      throw badRequest(
        "'max_tokens' and 'max_completion_tokens' differ; send one of them.",
        'max_completion_tokens',
      );
    }
    maxTokens = newer;
    fieldOf.max_tokens = 'max_completion_tokens';
  }

  const prompt = renderChat(messages, template);
  if (prompt.length > MAX_CODE_UNITS_PER_TOKEN * (CONTEXT_LENGTH - 1)) {
    // Refused before encoding: it cannot fit the context even with a one-token reply.
    throw badRequest(
      `This model's context length is ${CONTEXT_LENGTH} tokens; the conversation's ${prompt.length} characters need more.`,
      'messages',
      'context_length_exceeded',
    );
  }
  const ids = tokenizer.encode(prompt);
  if (maxTokens === undefined || maxTokens === null) {
    maxTokens = Math.max(1, Math.min(CHAT_DEFAULT_MAX_TOKENS, CONTEXT_LENGTH - ids.length));
  }

  const completion: Record<string, unknown> = {};
  for (const [field, v] of Object.entries(body)) {
    if (!(field in CHAT_ONLY) && field !== 'messages' && field !== 'max_completion_tokens') {
      completion[field] = v;
    }
  }
  completion.prompt = ids;
  completion.max_tokens = maxTokens;
  return { body: completion, fieldOf };
}
