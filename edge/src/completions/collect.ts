// The answer of a non-streaming completion: the text up to the finish event.

import type { FinishReason } from './format.ts';
import type { GenerationEvent } from './generation.ts';

/**
 * Reads events up to the finish only: ending the generation (cancelling the upstream request)
 * is left to the caller, after the answer has left, as for a stream.
 */
export async function collectText(
  events: AsyncGenerator<GenerationEvent>,
  echo: string,
): Promise<{ text: string; finish: FinishReason }> {
  let text = echo;
  for (;;) {
    const step = await events.next();
    if (step.done) return { text, finish: 'length' };
    if (step.value.type === 'text') text += step.value.text;
    else if (step.value.type === 'finish') return { text, finish: step.value.reason };
  }
}
