// `npm run -s cli -- generate --model DIR --ids 5,6,7 --max-new-tokens 20 [--temperature 0]
//    [--top-p P] [--top-k K] [--repetition-penalty R] [--seed S] [--stop-ids 3,9] [--threads N]
//    [--logprobs K] [--score]`
// Prints one JSON array of the generated ids on stdout (the end-of-text or stop id that ended
// generation included, as Hugging Face's generate returns it) and nothing else; with
// --logprobs or --score one JSON object instead: {ids, logprobs?, prompt_logprobs?}.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { GenerationEngine } from '../../gpu-function/src/engine/engine.ts';
import { ModelConfigError } from '../../gpu-function/src/model/config.ts';
import { ApiError } from '../../shared/src/errors.ts';

const USAGE = `usage: npm run -s cli -- generate --model DIR --ids 5,6,7 --max-new-tokens N
         [--temperature T] [--top-p P] [--top-k K] [--repetition-penalty R] [--seed S]
         [--stop-ids 3,9] [--threads N] [--logprobs K] [--score]
  DIR is a converter output folder (config.json, manifest.json, weights).
  --logprobs K: each generated id's log-probability and its K (0..5) most likely alternatives.
  --score: the prompt's ids scored too (the first is null); --max-new-tokens may then be 0.
  --temperature defaults to 0 (greedy, like Hugging Face generate without sampling);
  top-p/top-k/seed only matter when it is above 0. End-of-text (id 3) always stops.
`;

class UsageError extends Error {
  override name = 'UsageError';
}

function intList(flag: string, text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  return parts.map((s) => {
    const v = /^-?\d+$/.test(s) ? Number(s) : Number.NaN;
    if (!Number.isSafeInteger(v)) throw new UsageError(`--${flag}: '${s}' is not an integer`);
    return v;
  });
}

function num(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--${flag}: '${text}' is not a number`);
  return v;
}

export async function run(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: args.slice(1),
      options: {
        model: { type: 'string' },
        ids: { type: 'string' },
        'max-new-tokens': { type: 'string' },
        temperature: { type: 'string' },
        'top-p': { type: 'string' },
        'top-k': { type: 'string' },
        'repetition-penalty': { type: 'string' },
        seed: { type: 'string' },
        'stop-ids': { type: 'string' },
        threads: { type: 'string' },
        logprobs: { type: 'string' },
        score: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stderr.write(USAGE);
    return 0;
  }
  const str = (k: string) => values[k] as string | undefined;
  const model = str('model');
  if (!model || !str('ids') || !str('max-new-tokens')) {
    process.stderr.write(`generate needs --model, --ids and --max-new-tokens\n\n${USAGE}`);
    return 2;
  }
  let engine: GenerationEngine | undefined;
  try {
    const promptIds = intList('ids', str('ids') as string);
    const [maxNewTokens] = intList('max-new-tokens', str('max-new-tokens') as string);
    const threads = num('threads', str('threads'));
    if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) {
      throw new UsageError('--threads must be a positive integer');
    }
    for (const file of ['config.json', 'manifest.json']) {
      if (!existsSync(path.join(model, file))) {
        throw new UsageError(`${model}: no ${file} (is it a converter output folder?)`);
      }
    }
    const temperature = num('temperature', str('temperature')) ?? 0;
    const request = {
      promptIds,
      maxNewTokens: maxNewTokens as number,
      temperature,
      topP: num('top-p', str('top-p')),
      topK: num('top-k', str('top-k')),
      repetitionPenalty: num('repetition-penalty', str('repetition-penalty')),
      seed: num('seed', str('seed')),
      stopIds: str('stop-ids') === undefined ? [] : intList('stop-ids', str('stop-ids') as string),
      logprobs: num('logprobs', str('logprobs')) ?? null,
      scorePrompt: values.score === true,
    };
    const detailed = request.logprobs !== null || request.scorePrompt;
    engine = await GenerationEngine.open(model, threads === undefined ? {} : { intraOpNumThreads: threads });
    const stream = engine.generate(request);
    const ids: number[] = [];
    const logprobs: unknown[] = [];
    let promptLogprobs: unknown;
    for await (const chunk of stream) {
      ids.push(...chunk.ids);
      logprobs.push(...(chunk.logprobs ?? []));
      promptLogprobs ??= chunk.promptLogprobs;
    }
    const result = await stream.result;
    if (result.stopTokenId !== null) ids.push(result.stopTokenId);
    const out = !detailed
      ? ids
      : {
          ids,
          ...(request.logprobs !== null ? { logprobs } : {}),
          ...(request.scorePrompt ? { prompt_logprobs: promptLogprobs } : {}),
        };
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof UsageError || err instanceof ModelConfigError || err instanceof SyntaxError) {
      process.stderr.write(`generate: ${err.message}\n`);
      return 2;
    }
    if (err instanceof ApiError) {
      process.stderr.write(`generate: ${err.message}${err.param ? ` (${err.param})` : ''}\n`);
      return 2;
    }
    throw err;
  } finally {
    await engine?.close();
  }
}
