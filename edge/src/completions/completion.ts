// One admitted completion, from its body to its answer: validate, tokenize, reserve, generate,
// and answer as JSON or SSE; the settlement (settlement.ts) charges what was produced.

import { ApiError } from '../../../shared/src/errors.ts';
import { type GenerateRequest, parseGenerateRequest } from '../../../shared/src/protocol/generate.ts';
import { parseJsonText } from '../http/json-body.ts';
import type { Admission } from '../limits/admission.ts';
import type { EdgeSettings } from '../settings.ts';
import { loadTokenizer } from '../tokenizer.ts';
import { collectText } from './collect.ts';
import { promptIds } from './encode.ts';
import { completionBody, newCompletionIdentity, usageOf } from './format.ts';
import { type GenerationEvent, generate } from './generation.ts';
import { type CompletionParams, parseCompletionParams } from './params.ts';
import { Settlement } from './settlement.ts';
import { sseStream } from './sse.ts';

export interface CompletionInput {
  settings: EdgeSettings;
  admission: Admission;
  /** The request's body text, arriving (read while the key was admitted). */
  bodyText: Promise<string>;
  /** Aborted when the client hangs up (enable_request_signal, wrangler.toml). */
  clientSignal: AbortSignal | undefined;
  ctx: { waitUntil(promise: Promise<unknown>): void };
  /** Told the rate-limit headers once the tokens are reserved. */
  onReserved: (headers: Record<string, string>) => void;
}

function generateRequestOf(params: CompletionParams, ids: number[]): GenerateRequest {
  // The shared validator is the last word on what the GPU function accepts.
  return parseGenerateRequest({
    prompt_ids: ids,
    max_new_tokens: params.maxTokens,
    temperature: params.temperature,
    top_p: params.topP,
    top_k: params.topK,
    repetition_penalty: params.repetitionPenalty,
    seed: params.seed,
    stop_ids: [],
  });
}

export async function answerCompletion(input: CompletionInput): Promise<Response> {
  const { settings, admission } = input;
  const settlement = new Settlement(admission, input.ctx);
  const clientGone = new AbortController();
  // A client that hangs up: stop generating for it (upstream too) and settle what it produced.
  input.clientSignal?.addEventListener(
    'abort',
    () => {
      clientGone.abort();
      settlement.end();
    },
    { once: true },
  );
  try {
    const params = parseCompletionParams(parseJsonText(await input.bodyText));
    const tokenizer = await loadTokenizer();
    const ids = promptIds(params.prompt, params.maxTokens, tokenizer);
    const request = generateRequestOf(params, ids);
    // Reserve the most this request can use; settle to the real usage when it ends.
    await admission.take(ids.length + params.maxTokens);
    input.onReserved(admission.headers);

    const events = generate(
      {
        request,
        stop: params.stop,
        tokenizer,
        upstream: {
          baseUrl: settings.gpuFunctionUrl,
          secret: settings.hmacSecret,
          invoker: settings.invoker,
          coldStartTimeoutMs: settings.coldStartTimeoutMs,
          idleTimeoutMs: settings.streamIdleTimeoutMs,
        },
        signal: clientGone.signal,
      },
      settlement.progress,
    );
    settlement.begin(events, ids.length);
    const echo = !params.echo ? '' : 'text' in params.prompt ? params.prompt.text : tokenizer.decode(ids);

    if (!params.stream) {
      const { text, finish } = await collectText(events, echo);
      const usage = usageOf(ids.length, settlement.progress.completionTokens);
      settlement.end();
      return Response.json(completionBody(newCompletionIdentity(), text, finish, usage), {
        headers: admission.headers,
      });
    }

    // Errors before the first event (a refusing or unreachable backend) still get a real status.
    const first: IteratorResult<GenerationEvent> = await events.next();
    const stream = sseStream({
      first,
      events,
      who: newCompletionIdentity(),
      echo,
      includeUsage: params.includeUsage,
      promptTokens: ids.length,
      progress: settlement.progress,
      clientGone,
    });
    void stream.ended.then(() => settlement.end());
    return new Response(stream.body, {
      headers: {
        ...admission.headers,
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
      },
    });
  } catch (err) {
    settlement.end();
    // Nobody reads this answer; it only keeps the hang-up out of the error log.
    if (clientGone.signal.aborted) {
      throw new ApiError(499, 'invalid_request_error', 'The client closed the request.', {
        code: 'client_closed',
      });
    }
    throw err;
  }
}
