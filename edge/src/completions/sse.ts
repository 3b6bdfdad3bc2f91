// The answer as server-sent events: keep-alives while waiting, a chunk per piece of text, the
// finish (with usage if asked) and [DONE] in one write; an error event if generation fails.

import { toApiError } from '../../../shared/src/errors.ts';
import { type CompletionIdentity, errorEvent, SSE_DONE, SSE_KEEP_ALIVE, usageOf } from './format.ts';
import type { GenerationEvent, GenerationProgress } from './generation.ts';
import type { AnswerShape } from './shape.ts';

export interface SseInput {
  first: IteratorResult<GenerationEvent>;
  events: AsyncGenerator<GenerationEvent>;
  who: CompletionIdentity;
  /** The objects the events carry: completions or chat chunks. */
  shape: AnswerShape;
  /** Per choice: the text it starts with (the prompt, with echo), else ''. */
  echoes: readonly string[];
  /** Completions per prompt (choice i belongs to prompt floor(i / n)). */
  n: number;
  /** Log-probabilities were asked for. */
  logprobs: boolean;
  includeUsage: boolean;
  promptTokens: number;
  progress: GenerationProgress;
  clientGone: AbortController;
}

/**
 * The SSE body. `ended` resolves once the stream is over and the generation ended (cancelled
 * upstream if it stopped early), which is when its usage can be settled.
 */
export function sseStream(input: SseInput): { body: ReadableStream<Uint8Array>; ended: Promise<void> } {
  let resolveEnded: () => void = () => {};
  const ended = new Promise<void>((resolve) => {
    resolveEnded = resolve;
  });
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (bytes: Uint8Array) => {
        if (!input.clientGone.signal.aborted) controller.enqueue(bytes);
      };
      pump(input, send)
        .catch((err: unknown) => {
          if (input.clientGone.signal.aborted) return;
          const error = toApiError(err);
          if (error.status >= 500) console.error(`stream failed: ${error.message}`);
          send(errorEvent(error.toJSON()));
        })
        .finally(async () => {
          if (!input.clientGone.signal.aborted) controller.close();
          // Ends the generation if pump stopped early (finish, client gone): cancels upstream.
          await input.events.return(undefined).catch(() => undefined);
          resolveEnded();
        });
    },
    cancel() {
      input.clientGone.abort();
    },
  });
  return { body, ended };
}

async function pump(input: SseInput, send: (bytes: Uint8Array) => void): Promise<void> {
  const { who, includeUsage, shape } = input;
  // With logprobs an echo waits for the prompt's scores, which it carries.
  input.echoes.forEach((echo, index) => {
    const opening = shape.opening(who, index, input.logprobs ? '' : echo, includeUsage);
    if (opening) send(opening);
  });
  let open = input.echoes.length;
  for (let step = input.first; !step.done; step = await input.events.next()) {
    const event = step.value;
    if (event.type === 'waiting') send(SSE_KEEP_ALIVE);
    else if (event.type === 'prompt') {
      input.echoes.forEach((echo, index) => {
        if (Math.floor(index / input.n) !== event.prompt || !echo) return;
        send(shape.chunk(who, index, echo, null, includeUsage, event.logprobs));
      });
    } else if (event.type === 'text') {
      send(shape.chunk(who, event.index, event.text, null, includeUsage, event.logprobs));
    } else {
      const finish = shape.chunk(who, event.index, '', event.reason, includeUsage);
      if (--open > 0) {
        send(finish);
        continue;
      }
      // The last chunk, the usage and [DONE] leave in one write: fewer small packets to wait on.
      const tail = [finish];
      if (includeUsage)
        tail.push(shape.usage(who, usageOf(input.promptTokens, input.progress.completionTokens)));
      tail.push(SSE_DONE);
      send(concat(tail));
      return;
    }
    if (input.clientGone.signal.aborted) throw new Error('client went away');
  }
  throw new Error('generation ended without a finish event');
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
