// What an answer looks like: completion.ts runs the same steps for /v1/completions and
// /v1/chat/completions, and only the objects it writes differ. The completions shape is here;
// chat's is in chat/format.ts.

import type { CollectedChoice } from './collect.ts';
import {
  type CompletionIdentity,
  chunkEvent,
  completionBody,
  type FinishReason,
  newCompletionIdentity,
  type Usage,
  usageEvent,
} from './format.ts';
import type { LogprobEntry } from './logprobs.ts';

export interface AnswerShape {
  /** A new answer's id and creation time, naming the model build. */
  identity(systemFingerprint: string): CompletionIdentity;
  /** The whole answer of a request without `stream`. */
  body(who: CompletionIdentity, choices: readonly CollectedChoice[], usage: Usage): unknown;
  /** The event that opens choice `index` of a stream, if any (its echo, a chat role). */
  opening(who: CompletionIdentity, index: number, echo: string, includeUsage: boolean): Uint8Array | null;
  /** A piece of a choice's text, or (text '' and a reason) its finish. */
  chunk(
    who: CompletionIdentity,
    index: number,
    text: string,
    finish: FinishReason | null,
    includeUsage: boolean,
    logprobs?: readonly LogprobEntry[],
  ): Uint8Array;
  /** The usage event before [DONE], with include_usage. */
  usage(who: CompletionIdentity, usage: Usage): Uint8Array;
}

/** OpenAI's `text_completion` objects. */
export const TEXT_COMPLETION: AnswerShape = {
  identity: (systemFingerprint) => newCompletionIdentity(systemFingerprint),
  body: completionBody,
  opening: (who, index, echo, includeUsage) =>
    echo ? chunkEvent(who, index, echo, null, includeUsage) : null,
  chunk: chunkEvent,
  usage: usageEvent,
};
