// One admitted completion, from its body to its answer: validate, tokenize, reserve, generate,
// and answer as JSON or SSE; the settlement (settlement.ts) charges what was produced.

import { ApiError } from '../../../shared/src/errors.ts';
import {
  type GenerateRequest,
  parseGenerateRequest,
  WIRE_VERSION,
} from '../../../shared/src/protocol/generate.ts';
import { wireGroup } from '../../../shared/src/protocol/parameters.ts';
import { parseJsonText } from '../http/json-body.ts';
import type { Admission } from '../limits/admission.ts';
import type { EdgeSettings } from '../settings.ts';
import { loadTokenizer } from '../tokenizer.ts';
import { collectChoices } from './collect.ts';
import { promptIds } from './encode.ts';
import { usageOf } from './format.ts';
import { type GenerationEvent, generate } from './generation.ts';
import { type CompletionParams, parseCompletionParams } from './params.ts';
import { Settlement } from './settlement.ts';
import { type AnswerShape, TEXT_COMPLETION } from './shape.ts';
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
  /** The key's id: the GPU function takes turns between keys by it. */
  keyId: string;
  /** Reads the parameters from the parsed body; unset: a completions request (params.ts). */
  readParams?: (body: unknown) => CompletionParams | Promise<CompletionParams>;
  /** The objects the answer is made of; unset: completions (shape.ts). */
  shape?: AnswerShape;
  /** Stop sequences on top of the request's own (a chat template's turn markers). */
  extraStops?: readonly string[];
}

function generateRequestOf(params: CompletionParams, prompts: number[][], keyId: string): GenerateRequest {
  // The shared validator is the last word on what the GPU function accepts.
  return parseGenerateRequest({
    version: WIRE_VERSION,
    prompts,
    n: params.n,
    key_id: keyId,
    sampling: wireGroup(params.generation, 'sampling'),
    stopping: wireGroup(params.generation, 'stopping'),
    output: {
      ...wireGroup(params.generation, 'output'),
      // echo with logprobs: the prompt's tokens come back scored.
      ...(params.echo && params.generation.logprobs !== undefined ? { score_prompt: true } : {}),
    },
  });
}

export async function answerCompletion(input: CompletionInput): Promise<Response> {
  const { settings, admission } = input;
  const shape = input.shape ?? TEXT_COMPLETION;
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
    const body = parseJsonText(await input.bodyText);
    const params = input.readParams ? await input.readParams(body) : parseCompletionParams(body, settings);
    const tokenizer = await loadTokenizer();
    const prompts = params.prompts.map((p) => promptIds(p, params.generation.max_tokens, tokenizer));
    const request = generateRequestOf(params, prompts, input.keyId);
    const choices = prompts.length * params.n;
    // Every prompt counts once (as OpenAI counts them), every choice may reach max_tokens.
    const promptTokens = prompts.reduce((sum, ids) => sum + ids.length, 0);
    // One reservation for the whole request, of the most it can use; settled to the real usage.
    await admission.take(promptTokens + choices * params.generation.max_tokens);
    input.onReserved(admission.headers);

    const echoOf = (p: number) => {
      const prompt = params.prompts[p] as (typeof params.prompts)[number];
      if (!params.echo) return '';
      return 'text' in prompt ? prompt.text : tokenizer.decode(prompts[p] as number[]);
    };
    const echoes = Array.from({ length: choices }, (_, i) => echoOf(Math.floor(i / params.n)));

    const events = generate(
      {
        request,
        echoes,
        prompts,
        stop: [...params.generation.stop, ...(input.extraStops ?? [])],
        includeStop: params.generation.include_stop_str_in_output,
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
    settlement.begin(events, promptTokens);

    if (!params.stream) {
      const answers = await collectChoices(events, {
        echoes,
        n: params.n,
        logprobs: params.generation.logprobs !== undefined,
      });
      const usage = usageOf(promptTokens, settlement.progress.completionTokens);
      settlement.end();
      return Response.json(shape.body(shape.identity(settings.systemFingerprint), answers, usage), {
        headers: admission.headers,
      });
    }

    // Errors before the first event (a refusing or unreachable backend) still get a real status.
    const first: IteratorResult<GenerationEvent> = await events.next();
    const stream = sseStream({
      first,
      events,
      who: shape.identity(settings.systemFingerprint),
      shape,
      echoes,
      n: params.n,
      logprobs: params.generation.logprobs !== undefined,
      includeUsage: params.includeUsage,
      promptTokens,
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
    await settlement.fail();
    // Nobody reads this answer; it only keeps the hang-up out of the error log.
    if (clientGone.signal.aborted) {
      throw new ApiError(499, 'invalid_request_error', 'The client closed the request.', {
        code: 'client_closed',
      });
    }
    throw err;
  }
}
