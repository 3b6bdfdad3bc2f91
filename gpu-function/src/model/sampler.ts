// Next-token choice inside the graph, so that many decode steps fit in one run. Everything is
// float32 and built from ops with CUDA kernels. Randomness comes from a host-made uniform u per
// row and step: the graph's own RandomUniform state belongs to the session, not the request,
// so only host uniforms make a seed reproducible.
//
//   logits -> repetition penalty -> + additive (logit bias, presence/frequency penalties)
//          -> blocked ids out (min_tokens) -> temperature -> min-p -> top-k -> top-p
//          -> inverse CDF at u
//   temperature 0: argmax of the adjusted logits.
// The same seed and parameters always give the same ids; which CDF order maps u to an id
// (sorted or vocabulary order) depends only on the row's own parameters.

import type { GraphBuilder } from './onnx/index.ts';

export interface SamplerInputs {
  /** [B, V] float32. */
  logits: string;
  /** [B, V] bool: ids already present in prompt + output (repetition penalty applies). */
  presence: string;
  /**
   * [B, 1] per-row parameters by their name in the shared table (ROW_PARAMETERS):
   * temperature (0 = greedy), top_k (int64, 0 = off), top_p (1 = off), min_p (0 = off),
   * repetition_penalty (1 = off); a new one is read here by its name.
   */
  row: Readonly<Record<string, string>>;
  /** [B, 1] float32 in [0, 1). */
  uniform: string;
  /** [B, V] float32 added after the repetition penalty (logit bias, presence/frequency penalties). */
  additive?: string;
  /** [B, V] bool: ids that may not be chosen now (end-of-text and stop ids before min_tokens). */
  blocked?: string;
}

/** Most negative finite float32: a blocked or cut id gets exactly zero weight. */
const NEVER = -3.4028234663852886e38;

/**
 * The common repetition-penalty convention: for ids already present, positive logits are
 * divided by r and negative ones multiplied by r (so r > 1 always makes them less likely).
 */
export function emitRepetitionPenalty(g: GraphBuilder, logits: string, presence: string, r: string): string {
  const positive = g.op('Greater', [logits, g.scalar('float32', 0)]);
  const penalised = g.op('Where', [positive, g.op('Div', [logits, r]), g.op('Mul', [logits, r])]);
  return g.op('Where', [presence, penalised, logits], {}, { name: 'penalised_logits' });
}

/**
 * Returns the chosen id per row, [B, 1] int64. A full sort of the vocabulary is only needed
 * for top-k / top-p, so the graph branches (If) on what the batch asks for:
 *   every row greedy         -> argmax only
 *   no row truncates         -> inverse CDF over the unsorted softmax weights
 *   some row truncates       -> sort; truncated rows use the sorted CDF, the others the
 *                               unsorted one, so a row's choice never depends on its batch.
 */
export function emitSampler(g: GraphBuilder, x: SamplerInputs, vocabSize: number): string {
  const f32 = (v: number) => g.scalar('float32', v);
  const row = (name: string): string => {
    const value = x.row[name];
    if (!value) throw new Error(`sampler: no per-row input '${name}'`);
    return value;
  };
  const temperature = row('temperature');
  const topK = row('top_k');
  const topP = row('top_p');
  let logits = emitRepetitionPenalty(g, x.logits, x.presence, row('repetition_penalty'));
  if (x.additive) logits = g.op('Add', [logits, x.additive], {}, { name: 'adjusted_logits' });
  if (x.blocked) logits = g.op('Where', [x.blocked, f32(NEVER), logits], {}, { name: 'allowed_logits' });
  const greedy = g.op('ArgMax', [logits], { axis: 1, keepdims: 1 }, { name: 'greedy_id' });

  // Temperature; greedy rows divide by 1 so nothing below turns into NaN for them.
  const isGreedy = g.op('Equal', [temperature, f32(0)]);
  const safeT = g.op('Where', [isGreedy, f32(1), temperature]);
  const unclipped = g.op('Div', [logits, safeT], {}, { name: 'scaled_logits' });
  // min-p: keep ids whose probability is at least min_p times the top one's, i.e. whose scaled
  // logit is at least top + ln(min_p) (ln 0 = -inf keeps every id).
  const floor = g.op('Add', [
    g.op('ReduceMax', [unclipped], { axes: [1], keepdims: 1 }),
    g.op('Log', [row('min_p')]),
  ]);
  const scaled = g.op(
    'Where',
    [g.op('Less', [unclipped, floor]), f32(NEVER), unclipped],
    {},
    {
      name: 'min_p_logits',
    },
  );
  const truncated = g.op('And', [
    g.op('Not', [isGreedy]),
    g.op('Or', [g.op('Greater', [topK, g.scalar('int64', 0)]), g.op('Less', [topP, f32(1)])]),
  ]);
  const any = (rows: string) =>
    g.op('Greater', [g.op('ReduceMax', [g.op('Cast', [rows], { to: 1 })], { keepdims: 0 }), f32(0)]);

  const plainBranch = g.subgraph('sample_plain');
  plainBranch.output('plain_id', pick(plainBranch, isGreedy, greedy, plainChoice(plainBranch)), 'int64', [
    'batch',
    1,
  ]);

  const sortedBranch = g.subgraph('sample_sorted');
  const mixed = sortedBranch.op('Where', [truncated, sortedChoice(sortedBranch), plainChoice(sortedBranch)]);
  sortedBranch.output('sorted_id', pick(sortedBranch, isGreedy, greedy, mixed), 'int64', ['batch', 1]);

  const samplingBranch = g.subgraph('sample');
  const sampled = samplingBranch.op('If', [any(truncated)], {
    then_branch: sortedBranch,
    else_branch: plainBranch,
  });
  samplingBranch.output('sampled_id', sampled, 'int64', ['batch', 1]);

  const greedyBranch = g.subgraph('sample_greedy');
  greedyBranch.output('argmax_id', greedy, 'int64', ['batch', 1]);

  const anySampled = any(g.op('Not', [isGreedy]));
  return g.op(
    'If',
    [anySampled],
    { then_branch: samplingBranch, else_branch: greedyBranch },
    { name: 'next_id' },
  );

  // Inverse CDF over the softmax weights in vocabulary order: the first id whose cumulative
  // weight exceeds u * total.
  function plainChoice(b: GraphBuilder): string {
    const axis1 = b.int64s([1]);
    const top = b.op('ReduceMax', [scaled], { axes: [1], keepdims: 1 });
    const weights = b.op('Exp', [b.op('Sub', [scaled, top])]);
    const cumulative = b.op('CumSum', [weights, b.scalar('int64', 1)]);
    const total = b.op('Slice', [cumulative, b.int64s([-1]), b.int64s([vocabSize]), axis1]);
    const below = b.op('Cast', [b.op('LessOrEqual', [cumulative, b.op('Mul', [x.uniform, total])])], {
      to: 1,
    });
    const count = b.op('ReduceSum', [below, axis1], { keepdims: 1 });
    // Rounding can make u * total equal total; fall back to the last id with weight.
    const ranks = b.op(
      'Cast',
      [b.op('Range', [b.scalar('int64', 0), b.scalar('int64', vocabSize), b.scalar('int64', 1)])],
      { to: 1 },
    );
    const positive = b.op('Greater', [weights, b.scalar('float32', 0)]);
    const lastPositive = b.op('ReduceMax', [b.op('Where', [positive, ranks, b.scalar('float32', 0)])], {
      axes: [1],
      keepdims: 1,
    });
    return b.op('Cast', [b.op('Min', [count, lastPositive])], { to: 7 }, { name: 'plain_choice' });
  }

  // The same over the weights sorted in descending order, after top-k and top-p masks.
  function sortedChoice(b: GraphBuilder): string {
    const axis1 = b.int64s([1]);
    const zero = b.scalar('float32', 0);
    const [sorted, order] = b.ops(
      'TopK',
      [scaled, b.int64s([vocabSize])],
      2,
      { axis: 1, largest: 1, sorted: 1 },
      {
        name: 'sorted',
      },
    ) as [string, string];
    const top = b.op('Slice', [sorted, b.int64s([0]), b.int64s([1]), axis1]);
    // Unnormalised softmax weights, 1 for the top id, nonincreasing along the row.
    const weights = b.op('Exp', [b.op('Sub', [sorted, top])]);
    const rank = b.op('Range', [b.scalar('int64', 0), b.scalar('int64', vocabSize), b.scalar('int64', 1)]);

    // top-k: keep ranks < k (k = 0 keeps all).
    const k = b.op('Where', [
      b.op('Equal', [topK, b.scalar('int64', 0)]),
      b.scalar('int64', vocabSize),
      topK,
    ]);
    const afterK = b.op('Where', [b.op('Less', [rank, k]), weights, zero]);

    // top-p over the top-k distribution: keep an id while the mass before it is below p;
    // the top id always stays.
    const massK = b.op('ReduceSum', [afterK, axis1], { keepdims: 1 });
    const before = b.op('CumSum', [afterK, b.scalar('int64', 1)], { exclusive: 1 });
    const keepP = b.op('Less', [before, b.op('Mul', [topP, massK])]);
    const kept = b.op('Where', [keepP, afterK, zero], {}, { name: 'kept_weights' });

    const cumulative = b.op('CumSum', [kept, b.scalar('int64', 1)]);
    const total = b.op('Slice', [cumulative, b.int64s([-1]), b.int64s([vocabSize]), axis1]);
    const below = b.op('Cast', [b.op('LessOrEqual', [cumulative, b.op('Mul', [x.uniform, total])])], {
      to: 1,
    });
    const count = b.op('ReduceSum', [below, axis1], { keepdims: 1 });
    // Rounding fallback as above; here the positive weights form a prefix (they are sorted).
    const positives = b.op('ReduceSum', [b.op('Cast', [b.op('Greater', [kept, zero])], { to: 1 }), axis1], {
      keepdims: 1,
    });
    const chosenRank = b.op(
      'Cast',
      [b.op('Min', [count, b.op('Sub', [positives, b.scalar('float32', 1)])])],
      {
        to: 7,
      },
    );
    return b.op('GatherElements', [order, chosenRank], { axis: 1 }, { name: 'sorted_choice' });
  }
}

function pick(b: GraphBuilder, isGreedy: string, greedy: string, sampled: string): string {
  return b.op('Where', [isGreedy, greedy, sampled]);
}

/** presence with `ids` ([B, n] int64) set. */
export function emitMarkPresent(g: GraphBuilder, presence: string, ids: string): string {
  const trues = g.filled(g.op('Shape', [ids]), 'bool', 1);
  return g.op('ScatterElements', [presence, ids, trues], { axis: 1 }, { name: 'presence' });
}

/** A [B, V] all-false presence mask with `ids` ([B, n] int64, n may be 0) set. */
export function emitPresenceFrom(g: GraphBuilder, ids: string, batch: string, vocabSize: number): string {
  const shape = g.op('Concat', [batch, g.int64s([vocabSize])], { axis: 0 });
  const none = g.filled(shape, 'bool', 0);
  return emitMarkPresent(g, none, ids);
}
