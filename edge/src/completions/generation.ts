// One completion request as a sequence of events: token ids from the GPU function become text
// through a streaming detokenizer per choice, stop sequences cut each choice, and the upstream
// request is cancelled as soon as every choice is complete.

import type { GenerateRequest } from '../../../shared/src/protocol/generate.ts';
import type { EdgeTokenizer } from '../tokenizer.ts';
import type { FinishReason } from './format.ts';
import { type LogprobEntry, logprobEntries } from './logprobs.ts';
import { StopMatcher } from './stop-matcher.ts';
import { generationFrames, openGeneration, type UpstreamOptions } from './upstream.ts';
import { upstreamFailure } from './upstream-error.ts';

export type GenerationEvent =
  /** Waiting for the GPU function (starting, loading, queued): time for a keep-alive. */
  | { type: 'waiting' }
  /** `logprobs` (when asked for): the tokens behind this text, offsets in the choice's text. */
  | { type: 'text'; index: number; text: string; logprobs?: LogprobEntry[] }
  /** The scored prompt `prompt` (echo with logprobs), offsets in the prompt's text. */
  | { type: 'prompt'; prompt: number; logprobs: LogprobEntry[] }
  | { type: 'finish'; index: number; reason: FinishReason };

export interface GenerationInput {
  request: GenerateRequest;
  /** Per choice (prompts x n): the text it starts with (its prompt, with echo), else ''. */
  echoes: readonly string[];
  /** The prompts' ids (for the token texts of a scored prompt). */
  prompts: readonly (readonly number[])[];
  stop: string[];
  /** Keep the stop string that ended a choice in its text (vLLM's include_stop_str_in_output). */
  includeStop?: boolean;
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
    const choices = input.echoes.map((echo) => ({
      decoder: input.tokenizer.createStreamDecoder(),
      matcher: new StopMatcher(input.stop),
      finished: false,
      /** Characters of the choice's text so far: its echo, then its tokens' (before stop matching). */
      chars: echo.length,
    }));
    const decode = (ids: number[]) => input.tokenizer.decode(ids);
    let open = choices.length;

    for await (const frame of generationFrames(response, input.upstream.idleTimeoutMs, abort)) {
      if (frame.type === 'heartbeat') {
        yield { type: 'waiting' };
      } else if (frame.type === 'tokens') {
        const index = frame.index ?? 0;
        const choice = choices[index];
        if (!choice) throw upstreamFailure('The model server sent tokens of an unknown choice.');
        progress.completionTokens += frame.ids.length;
        if (choice.finished) continue; // past its stop sequence: produced, not shown
        // Token by token, so a stop sequence cuts the log-probabilities at the token it ends in.
        let text = '';
        let stopped = false;
        const logprobs: LogprobEntry[] = [];
        for (const [i, id] of frame.ids.entries()) {
          const piece = choice.decoder.push(id);
          const score = frame.logprobs?.[i];
          if (score) logprobs.push(...logprobEntries([id], [score], decode, choice.chars));
          choice.chars += piece.length;
          const released = choice.matcher.push(piece);
          text += released.text;
          if (released.stopped) {
            if (input.includeStop) text += released.stop ?? '';
            stopped = true;
            break;
          }
        }
        if (text || logprobs.length > 0) {
          yield { type: 'text', index, text, ...(frame.logprobs ? { logprobs } : {}) };
        }
        if (stopped) {
          choice.finished = true;
          yield { type: 'finish', index, reason: 'stop' };
          if (--open === 0) return; // `finally` cancels the rest of the generation
        }
      } else if (frame.type === 'prompt') {
        const ids = input.prompts[frame.prompt];
        if (!ids) throw upstreamFailure('The model server scored an unknown prompt.');
        yield {
          type: 'prompt',
          prompt: frame.prompt,
          logprobs: logprobEntries(ids, frame.logprobs, decode, 0),
        };
      } else if (frame.type === 'done') {
        if (frame.finish_reason === 'error' || frame.finish_reason === 'cancelled') {
          console.error(`generation failed upstream: ${frame.error?.code ?? frame.finish_reason}`);
          throw upstreamFailure('The model server failed during generation.');
        }
        for (const [index, choice] of choices.entries()) {
          if (choice.finished) continue;
          const last = choice.matcher.push(choice.decoder.flush());
          const text = last.text + choice.matcher.flush();
          if (text) yield { type: 'text', index, text };
          const upstream = frame.choices?.[index]?.finish_reason ?? frame.finish_reason;
          yield { type: 'finish', index, reason: last.stopped || upstream !== 'length' ? 'stop' : 'length' };
        }
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
