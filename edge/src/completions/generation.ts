// One completion as a sequence of events: token ids from the GPU function become text through
// the streaming detokenizer, stop sequences cut it, and the upstream request is cancelled as
// soon as the answer is complete.

import type { GenerateRequest } from '../../../shared/src/protocol/generate.ts';
import type { EdgeTokenizer } from '../tokenizer.ts';
import type { FinishReason } from './format.ts';
import { StopMatcher } from './stop-matcher.ts';
import { generationFrames, openGeneration, type UpstreamOptions } from './upstream.ts';
import { upstreamFailure } from './upstream-error.ts';

export type GenerationEvent =
  /** Waiting for the GPU function (starting, loading, queued): time for a keep-alive. */
  { type: 'waiting' } | { type: 'text'; text: string } | { type: 'finish'; reason: FinishReason };

export interface GenerationInput {
  request: GenerateRequest;
  stop: string[];
  tokenizer: EdgeTokenizer;
  upstream: UpstreamOptions;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
}

/** Counts what the GPU function produced so far, for settling usage whatever happens. */
export interface GenerationProgress {
  completionTokens: number;
}

export async function* generate(
  input: GenerationInput,
  progress: GenerationProgress,
): AsyncGenerator<GenerationEvent> {
  const abort = new AbortController();
  const onClientGone = () => abort.abort();
  input.signal.addEventListener('abort', onClientGone, { once: true });
  try {
    const response = yield* waiting(openGeneration(input.request, input.upstream, abort.signal));
    const decoder = input.tokenizer.createStreamDecoder();
    const matcher = new StopMatcher(input.stop);

    for await (const frame of generationFrames(response, input.upstream.idleTimeoutMs, abort)) {
      if (frame.type === 'heartbeat') {
        yield { type: 'waiting' };
      } else if (frame.type === 'tokens') {
        let piece = '';
        for (const id of frame.ids) piece += decoder.push(id);
        progress.completionTokens += frame.ids.length;
        const { text, stopped } = matcher.push(piece);
        if (text) yield { type: 'text', text };
        if (stopped) {
          yield { type: 'finish', reason: 'stop' };
          return; // `finally` cancels the rest of the generation
        }
      } else if (frame.type === 'done') {
        if (frame.finish_reason === 'error' || frame.finish_reason === 'cancelled') {
          console.error(`generation failed upstream: ${frame.error?.code ?? frame.finish_reason}`);
          throw upstreamFailure('The model server failed during generation.');
        }
        const last = matcher.push(decoder.flush());
        const text = last.text + matcher.flush();
        if (text) yield { type: 'text', text };
        yield {
          type: 'finish',
          reason: last.stopped || frame.finish_reason !== 'length' ? 'stop' : 'length',
        };
        return;
      }
    }
    throw upstreamFailure('The model server ended the stream without finishing.');
  } finally {
    input.signal.removeEventListener('abort', onClientGone);
    abort.abort();
  }
}

/** Passes an opener's 'waiting' signals on as events and returns what it opened. */
async function* waiting<T>(opener: AsyncGenerator<'waiting', T>): AsyncGenerator<GenerationEvent, T> {
  for (;;) {
    const step = await opener.next();
    if (step.done) return step.value;
    yield { type: 'waiting' };
  }
}
