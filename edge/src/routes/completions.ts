// POST /v1/completions: validate, tokenize, reserve, forward, answer (JSON or SSE), settle.

import type { Context } from 'hono';
import { badRequest, toApiError } from '../../../shared/src/errors.ts';
import { CONTEXT_LENGTH } from '../../../shared/src/model-facts.ts';
import { type GenerateRequest, parseGenerateRequest } from '../../../shared/src/protocol/generate.ts';
import type { AppEnv } from '../app-env.ts';
import {
  type CompletionIdentity,
  chunkEvent,
  completionBody,
  errorEvent,
  type FinishReason,
  newCompletionIdentity,
  SSE_DONE,
  SSE_KEEP_ALIVE,
  usageEvent,
  usageOf,
} from '../completions/format.ts';
import {
  type GenerationEvent,
  type GenerationInput,
  type GenerationProgress,
  generate,
} from '../completions/generation.ts';
import { type CompletionParams, parseCompletionParams } from '../completions/params.ts';
import { readJsonBody } from '../http/json-body.ts';
import { rateLimitHeaders } from '../http/ratelimit-headers.ts';
import { forgetKey } from '../keys/recent-keys.ts';
import { configOf, limiterOf } from '../limits/client.ts';
import { refusalError } from '../limits/refusal.ts';
import { edgeSettings } from '../settings.ts';
import { loadTokenizer } from '../tokenizer.ts';

const nextTurn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

function checkContext(promptTokens: number, maxTokens: number): void {
  if (promptTokens + maxTokens <= CONTEXT_LENGTH) return;
  throw badRequest(
    `This model's context length is ${CONTEXT_LENGTH} tokens; the prompt has ${promptTokens} and max_tokens asks for ${maxTokens} more (${promptTokens + maxTokens}).`,
    promptTokens >= CONTEXT_LENGTH ? 'prompt' : 'max_tokens',
    'context_length_exceeded',
  );
}

function generateRequestOf(params: CompletionParams, promptIds: number[]): GenerateRequest {
  // The shared validator is the last word on what the GPU function accepts.
  return parseGenerateRequest({
    prompt_ids: promptIds,
    max_new_tokens: params.maxTokens,
    temperature: params.temperature,
    top_p: params.topP,
    top_k: params.topK,
    repetition_penalty: params.repetitionPenalty,
    seed: params.seed,
    stop_ids: [],
  });
}

export async function completions(c: Context<AppEnv>): Promise<Response> {
  const settings = edgeSettings(c.env);
  const key = c.get('apiKey');
  const params = parseCompletionParams(await readJsonBody(c.req.raw, settings.maxBodyBytes));
  const tokenizer = await loadTokenizer();
  const promptIds = 'ids' in params.prompt ? params.prompt.ids : tokenizer.encode(params.prompt.text);
  if (promptIds.length === 0) throw badRequest("'prompt' encodes to no tokens.", 'prompt');
  checkContext(promptIds.length, params.maxTokens);
  const request = generateRequestOf(params, promptIds);

  // Reserve the most this request can use; settle to the real usage when it ends.
  const limiter = limiterOf(c.env, key.id);
  const reserved = promptIds.length + params.maxTokens;
  const reservation = await limiter.reserve(configOf(key), reserved);
  const headers = rateLimitHeaders(reservation.state);
  if (!reservation.ok) {
    // The limiter knows of a revocation before KV does: stop trusting the remembered record.
    if (reservation.refusal === 'disabled') forgetKey(key.hash);
    throw refusalError(
      reservation.refusal,
      reservation.retryAfterMs,
      { tokens: reserved, limit: reservation.state.limitTokens },
      headers,
    );
  }
  const settle = (usedTokens: number) =>
    limiter.settle(reservation.reservationId, usedTokens).then(
      () => undefined,
      (err: unknown) => console.error(`settling reservation failed: ${String(err)}`),
    );

  const clientGone = new AbortController();
  // Where the runtime reports a client that hung up, stop generating for it.
  c.req.raw.signal?.addEventListener('abort', () => clientGone.abort(), { once: true });
  const progress: GenerationProgress = { completionTokens: 0 };
  const input: GenerationInput = {
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
  };
  const events = generate(input, progress);
  const echo = params.echo
    ? 'text' in params.prompt
      ? params.prompt.text
      : tokenizer.decode(promptIds)
    : '';
  // You pay for what the model produced: nothing when it produced nothing.
  const used = () => (progress.completionTokens > 0 ? promptIds.length + progress.completionTokens : 0);

  if (!params.stream) {
    let text = echo;
    let finish: FinishReason = 'length';
    try {
      // Up to the finish event only: ending the generation (cancelling the upstream request)
      // happens after the answer left, as for a stream.
      for (;;) {
        const step = await events.next();
        if (step.done) break;
        if (step.value.type === 'text') text += step.value.text;
        else if (step.value.type === 'finish') {
          finish = step.value.reason;
          break;
        }
      }
    } catch (err) {
      c.executionCtx.waitUntil(settle(0)); // the client receives nothing
      throw err;
    }
    const body = completionBody(
      newCompletionIdentity(),
      text,
      finish,
      usageOf(promptIds.length, progress.completionTokens),
    );
    // Settling can only lower the charge, so it waits a turn of the event loop and lets the
    // answer go out first: where the limiter object shares the worker's thread, its work would
    // otherwise delay the answer.
    c.executionCtx.waitUntil(
      nextTurn().then(async () => {
        await events.return(undefined).catch(() => undefined);
        await settle(used());
      }),
    );
    return Response.json(body, { headers });
  }

  // Errors before the first event (a refusing or unreachable backend) still get a real status.
  let first: IteratorResult<GenerationEvent>;
  try {
    first = await events.next();
  } catch (err) {
    c.executionCtx.waitUntil(settle(0));
    throw err;
  }
  const stream = sseStream({
    first,
    events,
    who: newCompletionIdentity(),
    echo,
    includeUsage: params.includeUsage,
    promptTokens: promptIds.length,
    progress,
    clientGone,
    onEnd: () => settle(used()),
  });
  c.executionCtx.waitUntil(stream.finished);
  return new Response(stream.body, {
    headers: { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' },
  });
}

interface SseInput {
  first: IteratorResult<GenerationEvent>;
  events: AsyncGenerator<GenerationEvent>;
  who: CompletionIdentity;
  echo: string;
  includeUsage: boolean;
  promptTokens: number;
  progress: GenerationProgress;
  clientGone: AbortController;
  onEnd: () => Promise<void>;
}

/** The SSE body; `finished` resolves once the stream ended and the usage is settled. */
function sseStream(input: SseInput): { body: ReadableStream<Uint8Array>; finished: Promise<void> } {
  let resolveFinished: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    resolveFinished = resolve;
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
          await nextTurn(); // the last bytes go out before the limiter's work (see the JSON path)
          await input.onEnd();
          resolveFinished();
        });
    },
    cancel() {
      input.clientGone.abort();
    },
  });
  return { body, finished };
}

async function pump(input: SseInput, send: (bytes: Uint8Array) => void): Promise<void> {
  const { who, includeUsage } = input;
  if (input.echo) send(chunkEvent(who, input.echo, null, includeUsage));
  for (let step = input.first; !step.done; step = await input.events.next()) {
    const event = step.value;
    if (event.type === 'waiting') send(SSE_KEEP_ALIVE);
    else if (event.type === 'text') send(chunkEvent(who, event.text, null, includeUsage));
    else {
      // The last chunk, the usage and [DONE] leave in one write: fewer small packets to wait on.
      const tail = [chunkEvent(who, '', event.reason, includeUsage)];
      if (includeUsage)
        tail.push(usageEvent(who, usageOf(input.promptTokens, input.progress.completionTokens)));
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
