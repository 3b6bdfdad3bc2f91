// The generation parameters: one table, from which the edge's request parser, the wire format
// to the GPU function and the engine's checks all derive (and the edge README's parameter
// table is generated). A parameter is declared once: its type, default, range, the OpenAI /
// vLLM names it goes by, its group on the wire and which side applies it. The engine only adds
// the checks that depend on the model (ids inside its vocabulary, its context length).

import { badRequest } from '../errors.ts';
import { CONTEXT_LENGTH, VOCAB_SIZE } from '../model-facts.ts';
import { preview } from '../preview.ts';

/** Where a parameter travels on the wire (`sampling`, `stopping`, `output`), or `edge` if it stays there. */
export type ParamGroup = 'sampling' | 'stopping' | 'output' | 'edge';

interface Common {
  group: ParamGroup;
  doc: string;
  /** The name on the wire when it differs (e.g. max_tokens -> max_new_tokens). */
  wire?: string;
}

export interface NumberParam extends Common {
  kind: 'number' | 'integer';
  /** null: no default (absent stays absent, e.g. a random seed). */
  default: number | null;
  min: number;
  max: number;
  exclusiveMin?: boolean;
  /** A value that also means "off" (vLLM's top_k = -1), sent as the default. */
  off?: number;
  /**
   * A per-row value the generation graph takes as a [batch] input of this type, named as the
   * parameter (the sampler reads it by that name); `engine` is its name in the engine's API.
   */
  row?: { type: 'float32' | 'int64'; engine: string };
}

export interface BooleanParam extends Common {
  kind: 'boolean';
  default: boolean;
}

export interface IdListParam extends Common {
  kind: 'ids';
  maxItems: number;
}

export interface StringListParam extends Common {
  kind: 'strings';
  maxItems: number;
  maxLength: number;
}

/** OpenAI's logit_bias: token id (as a string key) -> value. Read as [id, value] pairs. */
export interface BiasParam extends Common {
  kind: 'bias';
  maxItems: number;
  min: number;
  max: number;
}

export type ParamSpec = NumberParam | BooleanParam | IdListParam | StringListParam | BiasParam;

export const GENERATION_PARAMETERS = {
  max_tokens: {
    kind: 'integer',
    group: 'stopping',
    wire: 'max_new_tokens',
    default: 16,
    min: 0,
    max: CONTEXT_LENGTH,
    doc: 'tokens to generate per choice; prompt + max_tokens may not exceed 2048; 0 only to score the prompt (echo with logprobs)',
  },
  temperature: {
    kind: 'number',
    group: 'sampling',
    default: 1,
    min: 0,
    max: 2,
    doc: '0 is greedy, and so is anything below 1e-5',
    row: { type: 'float32', engine: 'temperature' },
  },
  top_p: {
    kind: 'number',
    group: 'sampling',
    default: 1,
    min: 0,
    max: 1,
    exclusiveMin: true,
    doc: 'nucleus sampling; 1 is off',
    row: { type: 'float32', engine: 'topP' },
  },
  top_k: {
    kind: 'integer',
    group: 'sampling',
    default: 0,
    min: -1,
    max: VOCAB_SIZE,
    off: -1,
    doc: 'keep the k most likely ids; 0 or -1 is off',
    row: { type: 'int64', engine: 'topK' },
  },
  min_p: {
    kind: 'number',
    group: 'sampling',
    default: 0,
    min: 0,
    max: 1,
    doc: 'keep ids at least this fraction as likely as the most likely one (vLLM); 0 is off',
    row: { type: 'float32', engine: 'minP' },
  },
  presence_penalty: {
    kind: 'number',
    group: 'sampling',
    default: 0,
    min: -2,
    max: 2,
    doc: 'subtracted from the logit of every id already generated (the prompt does not count)',
    row: { type: 'float32', engine: 'presencePenalty' },
  },
  frequency_penalty: {
    kind: 'number',
    group: 'sampling',
    default: 0,
    min: -2,
    max: 2,
    doc: 'subtracted from the logit of every generated id, times how often it was generated',
    row: { type: 'float32', engine: 'frequencyPenalty' },
  },
  logit_bias: {
    kind: 'bias',
    group: 'sampling',
    maxItems: 300,
    min: -100,
    max: 100,
    doc: 'token id -> value added to its logit; -100 bans it, 100 all but forces it',
  },
  repetition_penalty: {
    kind: 'number',
    group: 'sampling',
    default: 1,
    min: 0,
    max: 10,
    exclusiveMin: true,
    doc: 'divides positive and multiplies negative logits of ids already in prompt or output; 1 is off',
    row: { type: 'float32', engine: 'repetitionPenalty' },
  },
  seed: {
    kind: 'integer',
    group: 'sampling',
    default: null,
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    doc: 'same seed and parameters give the same tokens; absent: a random one (returned)',
  },
  stop: {
    kind: 'strings',
    group: 'edge',
    maxItems: 16,
    maxLength: 256,
    doc: 'a string or up to 16; the text is cut right before the first found',
  },
  include_stop_str_in_output: {
    kind: 'boolean',
    group: 'edge',
    default: false,
    doc: 'keep the stop string that ended a choice at the end of its text (vLLM)',
  },
  ignore_eos: {
    kind: 'boolean',
    group: 'stopping',
    default: false,
    doc: 'keep generating past end-of-text (vLLM)',
  },
  min_tokens: {
    kind: 'integer',
    group: 'stopping',
    default: 0,
    min: 0,
    max: CONTEXT_LENGTH,
    doc: 'tokens before end-of-text or a stop id may end a choice (vLLM); at most max_tokens',
  },
  stop_token_ids: {
    kind: 'ids',
    group: 'stopping',
    wire: 'stop_ids',
    maxItems: 16,
    doc: 'ids that end a choice (vLLM); end-of-text always does',
  },
  logprobs: {
    kind: 'integer',
    group: 'output',
    default: null,
    min: 0,
    max: 5,
    doc: "each token's log-probability and this many most likely alternatives (the model's own distribution, before temperature, top-k/top-p and penalties); with echo also the prompt's",
  },
} as const satisfies Record<string, ParamSpec>;

export type ParameterName = keyof typeof GENERATION_PARAMETERS;

/** The per-row scalar parameters the generation graph takes as inputs, in table order. */
export const ROW_PARAMETERS = Object.entries(GENERATION_PARAMETERS).flatMap(
  ([name, spec]: [string, ParamSpec]) =>
    'row' in spec && spec.row ? [{ name, spec: spec as NumberParam, ...spec.row }] : [],
);

/** The values of the per-row parameters among `fields` (e.g. a wire request's `sampling`). */
export function rowValues(fields: object): Record<string, number> {
  const values: Record<string, number> = {};
  for (const p of ROW_PARAMETERS) {
    const v = (fields as Record<string, unknown>)[p.name];
    if (typeof v === 'number') values[p.name] = v;
  }
  return values;
}

/** The parsed value of one parameter of the table. */
export type ParamValue<S extends ParamSpec> = S extends NumberParam
  ? S['default'] extends null
    ? number | undefined
    : number
  : S extends BooleanParam
    ? boolean
    : S extends IdListParam
      ? number[]
      : S extends StringListParam
        ? string[]
        : S extends BiasParam
          ? [number, number][]
          : never;

export type GenerationParameters = {
  [K in ParameterName]: ParamValue<(typeof GENERATION_PARAMETERS)[K]>;
};

function readNumber(spec: NumberParam, v: unknown, param: string): number | undefined {
  if (v === undefined || v === null) return spec.default ?? undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw badRequest(`'${param}' must be a finite number; got ${preview(v)}.`, param);
  }
  if (spec.kind === 'integer' && !Number.isInteger(v)) {
    throw badRequest(`'${param}' must be an integer; got ${v}.`, param);
  }
  const tooSmall = spec.exclusiveMin ? v <= spec.min : v < spec.min;
  if (tooSmall || v > spec.max) {
    const low = spec.exclusiveMin ? `(${spec.min}` : `[${spec.min}`;
    throw badRequest(`'${param}' must be in ${low}, ${spec.max}]; got ${v}.`, param);
  }
  return spec.off !== undefined && v === spec.off ? (spec.default ?? undefined) : v;
}

function readIds(spec: IdListParam, v: unknown, param: string): number[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw badRequest(`'${param}' must be an array of token ids.`, param);
  if (v.length > spec.maxItems) {
    throw badRequest(`'${param}' may hold at most ${spec.maxItems} ids; got ${v.length}.`, param);
  }
  for (const id of v) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) {
      throw badRequest(`'${param}' must hold integers in [0, ${VOCAB_SIZE}); got ${preview(id)}.`, param);
    }
  }
  return v as number[];
}

function readStrings(spec: StringListParam, v: unknown, param: string): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list)) throw badRequest(`'${param}' must be a string or an array of strings.`, param);
  if (list.length > spec.maxItems) {
    throw badRequest(`'${param}' may hold at most ${spec.maxItems} strings; got ${list.length}.`, param);
  }
  return list.map((s) => {
    if (typeof s !== 'string') throw badRequest(`'${param}' must hold strings; got ${preview(s)}.`, param);
    if (s === '') throw badRequest(`'${param}' strings must not be empty.`, param);
    if (s.length > spec.maxLength) {
      throw badRequest(`'${param}' strings may be at most ${spec.maxLength} characters long.`, param);
    }
    return s;
  });
}

function readBias(spec: BiasParam, v: unknown, param: string): [number, number][] {
  if (v === undefined || v === null) return [];
  if (typeof v !== 'object') throw badRequest(`'${param}' must be an object of token ids to numbers.`, param);
  // OpenAI's object keyed by id, or (as a parsed request is sent on) a list of [id, value] pairs.
  const pairs = Array.isArray(v) && v.every((p) => Array.isArray(p) && p.length === 2);
  if (Array.isArray(v) && !pairs) {
    throw badRequest(`'${param}' must be an object of token ids to numbers.`, param);
  }
  const entries = pairs
    ? (v as [unknown, unknown][]).map(([id, value]) => [String(id), value] as [string, unknown])
    : Object.entries(v as Record<string, unknown>);
  if (entries.length > spec.maxItems) {
    throw badRequest(`'${param}' may hold at most ${spec.maxItems} ids; got ${entries.length}.`, param);
  }
  return entries.map(([key, value]): [number, number] => {
    const id = Number(key);
    if (!/^\d{1,5}$/.test(key) || id >= VOCAB_SIZE) {
      throw badRequest(
        `'${param}' keys must be token ids in [0, ${VOCAB_SIZE}); got ${preview(key)}.`,
        param,
      );
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || value < spec.min || value > spec.max) {
      throw badRequest(
        `'${param}' values must be numbers in [${spec.min}, ${spec.max}]; got ${preview(value)}.`,
        param,
      );
    }
    return [id, value];
  });
}

/** One parameter's value from `body` (by its own name, or `name` if given), checked by its spec. */
export function readParameter(spec: ParamSpec, body: Record<string, unknown>, name: string): unknown {
  const v = body[name];
  switch (spec.kind) {
    case 'number':
    case 'integer':
      return readNumber(spec, v, name);
    case 'boolean':
      if (v === undefined || v === null) return spec.default;
      if (typeof v !== 'boolean') throw badRequest(`'${name}' must be a boolean.`, name);
      return v;
    case 'ids':
      return readIds(spec, v, name);
    case 'strings':
      return readStrings(spec, v, name);
    case 'bias':
      return readBias(spec, v, name);
  }
}

/** Every parameter of the table from a client's body (OpenAI names); absent ones get defaults. */
export function readGenerationParameters(body: Record<string, unknown>): GenerationParameters {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(GENERATION_PARAMETERS)) {
    out[name] = readParameter(spec, body, name);
  }
  checkMinTokens(out.min_tokens as number, out.max_tokens as number);
  return out as GenerationParameters;
}

/** max_tokens (named `param` where it is checked) may be 0 only when the prompt is scored. */
export function checkNothingToGenerate(maxTokens: number, scored: boolean, param = 'max_tokens'): void {
  if (maxTokens === 0 && !scored) {
    throw badRequest(`'${param}' may be 0 only when the prompt is scored (echo with logprobs).`, param);
  }
}

/** min_tokens may not exceed max_tokens. */
export function checkMinTokens(minTokens: number | undefined, maxTokens: number | undefined): void {
  if (minTokens !== undefined && maxTokens !== undefined && minTokens > maxTokens) {
    throw badRequest(`'min_tokens' (${minTokens}) may not exceed 'max_tokens' (${maxTokens}).`, 'min_tokens');
  }
}

/** The parameters that travel in one wire group, by their wire names. */
export function wireGroup(
  params: GenerationParameters,
  group: 'sampling' | 'stopping' | 'output',
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(GENERATION_PARAMETERS) as [ParameterName, ParamSpec][]) {
    if (spec.group !== group) continue;
    const value = params[name];
    if (value === undefined) continue;
    // logit_bias travels as OpenAI writes it, an object keyed by id.
    out[spec.wire ?? name] = spec.kind === 'bias' ? Object.fromEntries(value as [number, number][]) : value;
  }
  return out;
}

/** Reads one wire group back (wire names), checked by the same specs. */
export function readWireGroup(
  raw: unknown,
  group: 'sampling' | 'stopping' | 'output',
): Partial<GenerationParameters> & Record<string, unknown> {
  const body = raw === undefined ? {} : raw;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest(`'${group}' must be an object.`, group);
  }
  const fields = body as Record<string, unknown>;
  const known = new Set<string>();
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(GENERATION_PARAMETERS) as [ParameterName, ParamSpec][]) {
    if (spec.group !== group) continue;
    const wireName = spec.wire ?? name;
    known.add(wireName);
    const value = readParameter(spec, fields, wireName);
    if (value !== undefined) out[wireName] = value;
  }
  for (const key of Object.keys(fields)) {
    if (!known.has(key))
      throw badRequest(`Unknown ${group} parameter '${key.slice(0, 64)}'.`, `${group}.${key.slice(0, 64)}`);
  }
  return out as Partial<GenerationParameters> & Record<string, unknown>;
}
