// Facts about the served model that both sides rely on.

/** Context window: prompt + generated tokens may not exceed it. */
export const CONTEXT_LENGTH = 2048;
/** Rows of the embedding (the tokenizer has 65,535 pieces; id 65535 exists only in the model). */
export const VOCAB_SIZE = 65536;
export const EOS_TOKEN_ID = 3;
export const MODEL_ID = 'japanese-stablelm-base-alpha-7b';

/** The weights' Hugging Face id: accepted wherever the model id is (answers name MODEL_ID). */
export const MODEL_ALIASES: readonly string[] = ['stabilityai/japanese-stablelm-base-alpha-7b'];

/** Whether a request's `model` names the served model (its id or an alias). */
export const isServedModel = (model: unknown): boolean =>
  model === MODEL_ID || (typeof model === 'string' && MODEL_ALIASES.includes(model));
