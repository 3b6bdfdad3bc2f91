// The answer of a non-streaming completion: each choice's text up to its finish event.

import type { FinishReason } from './format.ts';
import type { GenerationEvent } from './generation.ts';

export interface CollectedChoice {
  text: string;
  finish: FinishReason;
}

/**
 * Reads events until every choice finished (`echoes[i]` starts choice i): ending the
 * generation (cancelling the upstream request) is left to the caller, after the answer has
 * left, as for a stream.
 */
export async function collectChoices(
  events: AsyncGenerator<GenerationEvent>,
  echoes: readonly string[],
): Promise<CollectedChoice[]> {
  const choices = echoes.map((text) => ({ text, finish: 'length' as FinishReason, done: false }));
  let open = choices.length;
  while (open > 0) {
    const step = await events.next();
    if (step.done) break;
    const event = step.value;
    if (event.type === 'waiting') continue;
    const choice = choices[event.index];
    if (!choice) continue;
    if (event.type === 'text') choice.text += event.text;
    else if (!choice.done) {
      choice.finish = event.reason;
      choice.done = true;
      open--;
    }
  }
  return choices.map(({ text, finish }) => ({ text, finish }));
}
