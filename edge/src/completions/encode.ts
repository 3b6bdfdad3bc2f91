// The prompt as token ids, checked against the context: text is tokenized only when it can fit.

import { badRequest } from '../../../shared/src/errors.ts';
import { CONTEXT_LENGTH } from '../../../shared/src/model-facts.ts';
import type { EdgeTokenizer } from '../tokenizer.ts';
import type { Prompt } from './prompt.ts';

/**
 * No token covers more than this many UTF-16 code units (the longest piece, `<|spmspace|>` x 16;
 * see shared/src/tokenizer/README.md), so longer text cannot fit in the tokens left.
 */
export const MAX_CODE_UNITS_PER_TOKEN = 192;

function contextError(promptTokens: number, maxTokens: number) {
  return badRequest(
    `This model's context length is ${CONTEXT_LENGTH} tokens; the prompt has ${promptTokens} and max_tokens asks for ${maxTokens} more (${promptTokens + maxTokens}).`,
    promptTokens >= CONTEXT_LENGTH ? 'prompt' : 'max_tokens',
    'context_length_exceeded',
  );
}

/** The prompt's ids; 400 when it is empty or it and max_tokens do not fit in the context. */
export function promptIds(prompt: Prompt, maxTokens: number, tokenizer: EdgeTokenizer): number[] {
  if ('text' in prompt) {
    const room = CONTEXT_LENGTH - maxTokens;
    if (prompt.text.length > MAX_CODE_UNITS_PER_TOKEN * room) {
      // Refused before encoding: the work of tokenizing it would be wasted.
      throw badRequest(
        `This model's context length is ${CONTEXT_LENGTH} tokens and max_tokens asks for ${maxTokens}; the prompt's ${prompt.text.length} characters need more than the ${room} tokens left.`,
        'prompt',
        'context_length_exceeded',
      );
    }
  }
  const ids = 'ids' in prompt ? prompt.ids : tokenizer.encode(prompt.text);
  if (ids.length === 0) throw badRequest("'prompt' encodes to no tokens.", 'prompt');
  if (ids.length + maxTokens > CONTEXT_LENGTH) throw contextError(ids.length, maxTokens);
  return ids;
}
