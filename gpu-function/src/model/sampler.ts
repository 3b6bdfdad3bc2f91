// Next-token choice inside the graph, so that many decode steps fit in one run. Everything is
// float32 and built from ops with CUDA kernels. Randomness comes from a host-made uniform u per
// row and step: the graph's own RandomUniform state belongs to the session, not the request,
// so only host uniforms make a seed reproducible.
//
//   logits -> repetition penalty -> temperature -> top-k -> top-p -> inverse CDF at u
//   temperature 0: argmax of the penalised logits.

import type { GraphBuilder } from './onnx/index.ts';

export interface SamplerInputs {
  /** [B, V] float32. */
  logits: string;
  /** [B, V] bool: ids already present in prompt + output (repetition penalty applies). */
  presence: string;
  /** [B, 1] float32; 1 = off. */
  repetitionPenalty: string;
  /** [B, 1] float32; 0 = greedy. */
  temperature: string;
  /** [B, 1] int64; 0 = off. */
  topK: string;
  /** [B, 1] float32 in (0, 1]; 1 = off. */
  topP: string;
  /** [B, 1] float32 in [0, 1). */
  uniform: string;
}

/**
 * The common repetition-penalty convention: for ids already present, positive logits are
 * divided by r and negative ones multiplied by r (so r > 1 always makes them less likely).
 */
export function emitRepetitionPenalty(g: GraphBuilder, logits: string, presence: string, r: string): string {
  const positive = g.op('Greater', [logits, g.scalar('float32', 0)]);
  const penalised = g.op('Where', [positive, g.op('Div', [logits, r]), g.op('Mul', [logits, r])]);
  return g.op('Where', [presence, penalised, logits], {}, { name: 'penalised_logits' });
}

/** Returns the chosen id per row, [B, 1] int64. */
export function emitSampler(g: GraphBuilder, x: SamplerInputs, vocabSize: number): string {
  const f32 = (v: number) => g.scalar('float32', v);
  const axis1 = g.int64s([1]);
  const logits = emitRepetitionPenalty(g, x.logits, x.presence, x.repetitionPenalty);
  const greedy = g.op('ArgMax', [logits], { axis: 1, keepdims: 1 }, { name: 'greedy_id' });

  // Temperature; greedy rows divide by 1 so nothing below turns into NaN for them.
  const isGreedy = g.op('Equal', [x.temperature, f32(0)]);
  const safeT = g.op('Where', [isGreedy, f32(1), x.temperature]);
  const scaled = g.op('Div', [logits, safeT]);

  // Sort once (descending); every truncation below is a mask over sorted ranks.
  const [sorted, order] = g.ops(
    'TopK',
    [scaled, g.int64s([vocabSize])],
    2,
    { axis: 1, largest: 1, sorted: 1 },
    {
      name: 'sorted',
    },
  ) as [string, string];
  const top = g.op('Slice', [sorted, g.int64s([0]), g.int64s([1]), axis1]);
  // Unnormalised softmax weights, 1 for the top id, nonincreasing along the row.
  const weights = g.op('Exp', [g.op('Sub', [sorted, top])]);
  const rank = g.op('Range', [g.scalar('int64', 0), g.scalar('int64', vocabSize), g.scalar('int64', 1)]);

  // top-k: keep ranks < k (k = 0 keeps all).
  const k = g.op('Where', [
    g.op('Equal', [x.topK, g.scalar('int64', 0)]),
    g.scalar('int64', vocabSize),
    x.topK,
  ]);
  const zero = f32(0);
  const afterK = g.op('Where', [g.op('Less', [rank, k]), weights, zero]);

  // top-p over the top-k distribution: keep an id while the mass before it is below p;
  // the top id always stays.
  const massK = g.op('ReduceSum', [afterK, axis1], { keepdims: 1 });
  const before = g.op('CumSum', [afterK, g.scalar('int64', 1)], { exclusive: 1 });
  const keepP = g.op('Less', [before, g.op('Mul', [x.topP, massK])]);
  const kept = g.op('Where', [keepP, afterK, zero], {}, { name: 'kept_weights' });

  // Inverse CDF: the first rank whose cumulative weight exceeds u * total.
  const cumulative = g.op('CumSum', [kept, g.scalar('int64', 1)]);
  const total = g.op('Slice', [cumulative, g.int64s([-1]), g.int64s([vocabSize]), axis1]);
  const threshold = g.op('Mul', [x.uniform, total]);
  const below = g.op('Cast', [g.op('LessOrEqual', [cumulative, threshold])], { to: 1 });
  const count = g.op('ReduceSum', [below, axis1], { keepdims: 1 });
  // Rounding can make u * total equal total; fall back to the last id with weight (the
  // positive weights form a prefix because they are sorted).
  const positives = g.op('ReduceSum', [g.op('Cast', [g.op('Greater', [kept, zero])], { to: 1 }), axis1], {
    keepdims: 1,
  });
  const chosenRank = g.op('Cast', [g.op('Min', [count, g.op('Sub', [positives, f32(1)])])], { to: 7 });
  const sampled = g.op('GatherElements', [order, chosenRank], { axis: 1 }, { name: 'sampled_id' });

  return g.op('Where', [isGreedy, greedy, sampled], {}, { name: 'next_id' });
}

/** presence with `ids` ([B, n] int64) set. */
export function emitMarkPresent(g: GraphBuilder, presence: string, ids: string): string {
  const trues = g.op('ConstantOfShape', [g.op('Shape', [ids])], { value: boolTensorAttr(true) });
  return g.op('ScatterElements', [presence, ids, trues], { axis: 1 }, { name: 'presence' });
}

/** A [B, V] all-false presence mask with `ids` ([B, n] int64, n may be 0) set. */
export function emitPresenceFrom(g: GraphBuilder, ids: string, batch: string, vocabSize: number): string {
  const shape = g.op('Concat', [batch, g.int64s([vocabSize])], { axis: 0 });
  const none = g.op('ConstantOfShape', [shape], { value: boolTensorAttr(false) });
  return emitMarkPresent(g, none, ids);
}

function boolTensorAttr(value: boolean) {
  return {
    kind: 'tensor' as const,
    value: { name: 'value', dtype: 'bool' as const, dims: [1], raw: Uint8Array.of(value ? 1 : 0) },
  };
}
