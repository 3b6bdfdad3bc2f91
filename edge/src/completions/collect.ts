// The answer of a non-streaming completion: each choice's text up to its finish event, and its
// log-probabilities when asked for (the echoed prompt's first, then the generated tokens').

import type { FinishReason } from './format.ts';
import type { GenerationEvent } from './generation.ts';
import type { LogprobEntry } from './logprobs.ts';

export interface CollectedChoice {
  text: string;
  finish: FinishReason;
  /** With logprobs: one entry per token, offsets in `text`. */
  logprobs?: LogprobEntry[];
}

export interface CollectOptions {
  /** Per choice: the text it starts with (the prompt, with echo), else ''. */
  echoes: readonly string[];
  /** Completions per prompt (choice i belongs to prompt floor(i / n)). */
  n: number;
  logprobs: boolean;
}

/**
 * Reads events until every choice finished: ending the generation (cancelling the upstream
 * request) is left to the caller, after the answer has left, as for a stream.
 */
export async function collectChoices(
  events: AsyncGenerator<GenerationEvent>,
  o: CollectOptions,
): Promise<CollectedChoice[]> {
  const choices = o.echoes.map((text) => ({
    text,
    finish: 'length' as FinishReason,
    done: false,
    ...(o.logprobs ? { logprobs: [] as LogprobEntry[] } : {}),
  }));
  let open = choices.length;
  while (open > 0) {
    const step = await events.next();
    if (step.done) break;
    const event = step.value;
    if (event.type === 'waiting') continue;
    if (event.type === 'prompt') {
      choices.forEach((c, i) => {
        if (Math.floor(i / o.n) === event.prompt && c.logprobs) c.logprobs.unshift(...event.logprobs);
      });
      continue;
    }
    const choice = choices[event.index];
    if (!choice) continue;
    if (event.type === 'text') {
      choice.text += event.text;
      choice.logprobs?.push(...(event.logprobs ?? []));
    } else if (!choice.done) {
      choice.finish = event.reason;
      choice.done = true;
      open--;
    }
  }
  return choices.map(({ text, finish, logprobs }) => ({ text, finish, ...(logprobs ? { logprobs } : {}) }));
}
