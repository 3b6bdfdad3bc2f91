// The generation graph (model.onnx): an ONNX Loop whose body is one decoder step followed by
// the in-graph sampler, so one session.run decodes a whole chunk of tokens and the key/value
// cache crosses the host/runtime boundary once in and once out per chunk, not per token.
//
//   carried:  ids [B, T] -> [B, 1]   (left-padded prompts on a prefill run)
//             positions [B, T] -> [B, 1], mask [B, P + T] -> grows by one column a step
//             done [B, 1], presence [B, V], past key/value per layer (growing)
//   each step: hidden = decoder(ids, positions, past, mask); logits = lm_head(hidden[:, -1])
//              id = sample(logits, presence, params, uniforms[step])
//              a row is done after end-of-text, a stop id, or its budget; stop when all are
//   outputs:  tokens [steps, B] (scan), present key/value per layer (final carried values),
//             each step's log-probability of its id and top alternatives (scan), and with
//             score_targets the prompt's scores from the first step (carried)
//
// Log-probabilities are the model's own (log-softmax of the raw logits, before penalties and
// temperature). IO names: generation-io.ts. Every op has a CUDA kernel; no logits leave the graph.

import { ROW_PARAMETERS } from '../../../shared/src/protocol/parameters.ts';
import type { ModelConfig } from './config.ts';
import { type DecoderOptions, type KeyValue, prepareDecoder, type WeightMap } from './decoder.ts';
import {
  FINISHED_ROW_TOKEN,
  GEN,
  LOGPROB_TOP_K,
  pastKeyName,
  pastValueName,
  presentKeyName,
  presentValueName,
} from './generation-io.ts';
import { GraphBuilder, type ModelProto } from './onnx/index.ts';
import { emitMarkPresent, emitPresenceFrom, emitSampler } from './sampler.ts';

export type GenerationModelOptions = DecoderOptions;

export function buildGenerationModel(
  config: ModelConfig,
  weights: WeightMap,
  options: GenerationModelOptions = {},
): ModelProto {
  const g = new GraphBuilder('generate');
  const decoder = prepareDecoder(g, config, weights, options);
  const { dtype } = decoder;
  const { numHeads: N, headSize: D, numLayers: L, vocabSize: V } = config;
  const column = (x: string) => g.op('Unsqueeze', [x, g.int64s([1])]); // [B] -> [B, 1]

  const inputIds = g.input(GEN.inputIds, 'int64', ['batch', 'seq']);
  const positionIds = g.input(GEN.positionIds, 'int64', ['batch', 'seq']);
  const attentionMask = g.input(GEN.attentionMask, 'int64', ['batch', 'past_seq']);
  const past: KeyValue[] = [];
  for (let l = 0; l < L; l++) {
    past.push({
      key: g.input(pastKeyName(l), dtype, ['batch', N, 'past', D]),
      value: g.input(pastValueName(l), dtype, ['batch', N, 'past', D]),
    });
  }
  const maxSteps = g.input(GEN.maxSteps, 'int64', []);
  const uniforms = g.input(GEN.uniforms, 'float32', ['steps', 'batch']);
  // The per-row scalar parameters, one [batch] input each, named as in the shared table.
  const row: Record<string, string> = {};
  for (const p of ROW_PARAMETERS) row[p.name] = column(g.input(p.name, p.type, ['batch']));

  const seenIds = g.input(GEN.seenIds, 'int64', ['batch', 'seen']);
  const stopIds = g.input(GEN.stopIds, 'int64', ['batch', 'stops']);
  const doneIn = column(g.input(GEN.done, 'bool', ['batch']));
  const budget = column(g.input(GEN.budget, 'int64', ['batch']));
  const countedIds = g.input(GEN.countedIds, 'int64', ['batch', 'counted']);
  const countedWeights = g.input(GEN.countedWeights, 'float32', ['batch', 'counted']);
  const biasIds = g.input(GEN.biasIds, 'int64', ['batch', 'biased']);
  const biasValues = g.input(GEN.biasValues, 'float32', ['batch', 'biased']);
  const minTokensLeft = column(g.input(GEN.minTokensLeft, 'int64', ['batch']));
  const scoreTargets = g.input(GEN.scoreTargets, 'int64', ['batch', 'score_seq']);

  // Loop-invariant values, computed once per run in the main graph (bodies see them).
  const batch = g.op(
    'Slice',
    [g.op('Shape', [inputIds]), g.int64s([0]), g.int64s([1])],
    {},
    { name: 'batch' },
  );
  const presence = emitPresenceFrom(g, seenIds, batch, V);
  // Per-run [B, V] tables: the counts of generated ids, the logit bias, the stop ids.
  const zerosBV = g.filled(g.op('Concat', [batch, g.int64s([V])], { axis: 0 }), 'float32', 0);
  const counts = g.op(
    'ScatterElements',
    [zerosBV, countedIds, countedWeights],
    { axis: 1, reduction: 'add' },
    { name: 'counts' },
  );
  const bias = g.op('ScatterElements', [zerosBV, biasIds, biasValues], { axis: 1 }, { name: 'logit_bias' });
  const stopTable = g.op(
    'ScatterElements',
    [zerosBV, stopIds, g.filled(g.op('Shape', [stopIds]), 'float32', 1)],
    { axis: 1 },
  );
  const stopMask = g.op('Greater', [stopTable, g.scalar('float32', 0.5)], {}, { name: 'stop_mask' });
  const emptyScores = (dims: number[], dtype: 'float32' | 'int64') =>
    g.filled(g.op('Concat', [batch, g.int64s(dims)], { axis: 0 }), dtype, 0);
  const scoring = g.op('Greater', [
    g.op('Squeeze', [g.op('Shape', [scoreTargets], { start: 1, end: 2 })]),
    g.scalar('int64', 0),
  ]);

  // The body: one step.
  const body = g.subgraph('step');
  const step = body.input('step.iter', 'int64', []);
  body.input('step.cond', 'bool', []);
  const ids = body.input('step.ids', 'int64', ['batch', 'step_seq']);
  const positions = body.input('step.positions', 'int64', ['batch', 'step_seq']);
  const mask = body.input('step.mask', 'int64', ['batch', 'step_total']);
  const done = body.input('step.done', 'bool', ['batch', 1]);
  const seen = body.input('step.presence', 'bool', ['batch', V]);
  const countsIn = body.input('step.counts', 'float32', ['batch', V]);
  const scoresIn = body.input('step.scores', 'float32', ['batch', 'scored']);
  const scoreTopIn = body.input('step.score_top', 'float32', ['batch', 'scored', LOGPROB_TOP_K]);
  const scoreTopIdsIn = body.input('step.score_top_ids', 'int64', ['batch', 'scored', LOGPROB_TOP_K]);
  const stepPast: KeyValue[] = [];
  for (let l = 0; l < L; l++) {
    stepPast.push({
      key: body.input(`step.past.${l}.key`, dtype, ['batch', N, 'step_past', D]),
      value: body.input(`step.past.${l}.value`, dtype, ['batch', N, 'step_past', D]),
    });
  }

  const { hidden, present } = decoder.step(body, {
    inputIds: ids,
    positionIds: positions,
    past: stepPast,
    attentionMask: mask,
  });
  // Only the last position's logits matter: slice before the LM head (a prompt of T tokens
  // would otherwise cost T x V logits).
  const lastHidden = body.op('Slice', [hidden, body.int64s([-1]), body.int64s([2 ** 62]), body.int64s([1])]);
  const logits = body.op(
    'Squeeze',
    [decoder.logits(body, lastHidden), body.int64s([1])],
    {},
    { name: 'step.logits' },
  );
  const uniform = body.op('Unsqueeze', [body.op('Gather', [uniforms, step], { axis: 0 }), body.int64s([1])]);
  // OpenAI's penalties: presence x (count > 0) + frequency x count, off the logits.
  const penalty = body.op('Add', [
    body.op('Mul', [
      row.presence_penalty as string,
      body.op('Cast', [body.op('Greater', [countsIn, body.scalar('float32', 0)])], { to: 1 }),
    ]),
    body.op('Mul', [row.frequency_penalty as string, countsIn]),
  ]);
  const additive = body.op('Sub', [bias, penalty]);
  // min_tokens: a row's stop ids (end-of-text included) are out while it has steps left to make.
  const blocked = body.op('And', [stopMask, body.op('Less', [step, minTokensLeft])]);
  const next = emitSampler(body, { logits, presence: seen, uniform, additive, blocked, row }, V); // [B, 1]
  const countedNext = body.op('Add', [
    body.op('GatherElements', [countsIn, next], { axis: 1 }),
    body.scalar('float32', 1),
  ]);
  const countsOut = body.op(
    'ScatterElements',
    [countsIn, next, countedNext],
    { axis: 1 },
    { name: 'step.counts_next' },
  );

  // The sampled id's log-probability and the top alternatives, from the raw logits.
  const logprobs = body.op('LogSoftmax', [logits], { axis: 1 });
  const chosenLogprob = body.op('Squeeze', [
    body.op('GatherElements', [logprobs, next], { axis: 1 }),
    body.int64s([1]),
  ]);
  const [topLogprobs, topIds] = body.ops('TopK', [logprobs, body.int64s([LOGPROB_TOP_K])], 2, {
    axis: 1,
    largest: 1,
    sorted: 1,
  }) as [string, string];

  // Prompt scores, on the first step only, when asked for: every position's distribution over
  // its target (the next prompt token) and its top alternatives.
  const scoreNow = body.op('And', [scoring, body.op('Equal', [step, body.scalar('int64', 0)])]);
  const scoreBranch = body.subgraph('score');
  {
    const all = scoreBranch.op('LogSoftmax', [decoder.logits(scoreBranch, hidden)], { axis: -1 }); // [B, T, V]
    const targets = scoreBranch.op('Unsqueeze', [scoreTargets, scoreBranch.int64s([2])]);
    const picked = scoreBranch.op('Squeeze', [
      scoreBranch.op('GatherElements', [all, targets], { axis: 2 }),
      scoreBranch.int64s([2]),
    ]);
    const [values, ids] = scoreBranch.ops('TopK', [all, scoreBranch.int64s([LOGPROB_TOP_K])], 2, {
      axis: -1,
      largest: 1,
      sorted: 1,
    }) as [string, string];
    scoreBranch.output('score.values', picked, 'float32', ['batch', 'scored']);
    scoreBranch.output('score.top', values, 'float32', ['batch', 'scored', LOGPROB_TOP_K]);
    scoreBranch.output('score.top_ids', ids, 'int64', ['batch', 'scored', LOGPROB_TOP_K]);
  }
  const keepBranch = body.subgraph('score_keep');
  keepBranch.output('keep.values', keepBranch.op('Identity', [scoresIn]), 'float32', ['batch', 'scored']);
  keepBranch.output('keep.top', keepBranch.op('Identity', [scoreTopIn]), 'float32', [
    'batch',
    'scored',
    LOGPROB_TOP_K,
  ]);
  keepBranch.output('keep.top_ids', keepBranch.op('Identity', [scoreTopIdsIn]), 'int64', [
    'batch',
    'scored',
    LOGPROB_TOP_K,
  ]);
  const [scoresOut, scoreTopOut, scoreTopIdsOut] = body.ops('If', [scoreNow], 3, {
    then_branch: scoreBranch,
    else_branch: keepBranch,
  }) as [string, string, string];

  // A row is done once it emits end-of-text or a stop id, or has used its budget; finished
  // rows emit -1 from then on and keep their position (their later steps are discarded).
  const hitStop = body.op('Greater', [
    // (opset 17: ReduceMax/ReduceMin take axes as an attribute, ReduceSum as an input)
    body.op('ReduceMax', [body.op('Cast', [body.op('Equal', [next, stopIds])], { to: 1 })], {
      axes: [1],
      keepdims: 1,
    }),
    body.scalar('float32', 0),
  ]);
  // step + 1 >= budget, as budget < step + 2 (Less has a CUDA kernel for int64).
  const spent = body.op('Less', [budget, body.op('Add', [step, body.scalar('int64', 2)])]);
  const doneNext = body.op('Or', [body.op('Or', [done, hitStop]), spent], {}, { name: 'step.done_next' });
  const emitted = body.op('Where', [done, body.scalar('int64', FINISHED_ROW_TOKEN), next]);
  const anyLeft = body.op('Less', [
    body.op('ReduceMin', [body.op('Cast', [doneNext], { to: 1 })], { keepdims: 0 }),
    body.scalar('float32', 0.5),
  ]);
  const lastPosition = body.op('Slice', [
    positions,
    body.int64s([-1]),
    body.int64s([2 ** 62]),
    body.int64s([1]),
  ]);

  body.output('step.cond_out', anyLeft, 'bool', []);
  body.output('step.ids_out', next, 'int64', ['batch', 1]);
  const nextPosition = body.op('Where', [
    doneNext,
    lastPosition,
    body.op('Add', [lastPosition, body.scalar('int64', 1)]),
  ]);
  body.output('step.positions_out', nextPosition, 'int64', ['batch', 1]);
  const maskOut = body.op('Concat', [mask, body.op('Cast', [body.op('Not', [done])], { to: 7 })], {
    axis: 1,
  });
  body.output('step.mask_out', maskOut, 'int64', ['batch', 'step_total_next']);
  body.output('step.done_out', doneNext, 'bool', ['batch', 1]);
  body.output('step.presence_out', emitMarkPresent(body, seen, next), 'bool', ['batch', V]);
  body.output('step.counts_out', countsOut, 'float32', ['batch', V]);
  body.output('step.scores_out', scoresOut, 'float32', ['batch', 'scored_out']);
  body.output('step.score_top_out', scoreTopOut, 'float32', ['batch', 'scored_out', LOGPROB_TOP_K]);
  body.output('step.score_top_ids_out', scoreTopIdsOut, 'int64', ['batch', 'scored_out', LOGPROB_TOP_K]);
  present.forEach((kv, l) => {
    body.output(`step.present.${l}.key`, kv.key, dtype, ['batch', N, 'step_total', D]);
    body.output(`step.present.${l}.value`, kv.value, dtype, ['batch', N, 'step_total', D]);
  });
  body.output('step.token', body.op('Squeeze', [emitted, body.int64s([1])]), 'int64', ['batch']);
  body.output('step.token_logprob', chosenLogprob, 'float32', ['batch']);
  body.output('step.top_logprobs', topLogprobs, 'float32', ['batch', LOGPROB_TOP_K]);
  body.output('step.top_ids', topIds, 'int64', ['batch', LOGPROB_TOP_K]);

  const carried = [
    inputIds,
    positionIds,
    attentionMask,
    doneIn,
    presence,
    counts,
    emptyScores([0], 'float32'),
    emptyScores([0, LOGPROB_TOP_K], 'float32'),
    emptyScores([0, LOGPROB_TOP_K], 'int64'),
    ...past.flatMap((kv) => [kv.key, kv.value]),
  ];
  const scans = 4; // tokens, token log-probabilities, top log-probabilities and ids
  const outs = g.ops(
    'Loop',
    [maxSteps, g.scalar('bool', 1), ...carried],
    carried.length + scans,
    { body },
    { name: 'loop' },
  );
  g.output(GEN.promptLogprobs, outs[6] as string, 'float32', ['batch', 'scored']);
  g.output(GEN.promptTopLogprobs, outs[7] as string, 'float32', ['batch', 'scored', LOGPROB_TOP_K]);
  g.output(GEN.promptTopIds, outs[8] as string, 'int64', ['batch', 'scored', LOGPROB_TOP_K]);
  const firstKv = 9; // after ids, positions, mask, done, presence, counts, the three prompt-score values
  for (let l = 0; l < L; l++) {
    g.output(presentKeyName(l), outs[firstKv + 2 * l] as string, dtype, ['batch', N, 'total', D]);
    g.output(presentValueName(l), outs[firstKv + 2 * l + 1] as string, dtype, ['batch', N, 'total', D]);
  }
  g.output(GEN.tokens, outs[carried.length] as string, 'int64', ['steps_run', 'batch']);
  g.output(GEN.tokenLogprobs, outs[carried.length + 1] as string, 'float32', ['steps_run', 'batch']);
  g.output(GEN.topLogprobs, outs[carried.length + 2] as string, 'float32', [
    'steps_run',
    'batch',
    LOGPROB_TOP_K,
  ]);
  g.output(GEN.topIds, outs[carried.length + 3] as string, 'int64', ['steps_run', 'batch', LOGPROB_TOP_K]);

  return g.model({
    metadata: {
      graph: 'generate',
      compute_dtype: dtype,
      rotary: decoder.rotary,
      attention: decoder.attention,
    },
  });
}
