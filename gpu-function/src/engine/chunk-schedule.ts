// How many tokens each run of the generation graph decodes. The key/value cache crosses the
// host/runtime boundary once in and once out per run, so long chunks save bandwidth; but tokens
// reach the client only at chunk ends, so the first chunk is short (low time to first token)
// and later ones grow geometrically up to a bound (steady streaming granularity).

export interface ChunkPolicy {
  /** Tokens in the first run (the one that also consumes the prompt). */
  first: number;
  /** Each following chunk is this many times the previous one... */
  growth: number;
  /** ...up to this many tokens. */
  max: number;
}

export const DEFAULT_CHUNK_POLICY: ChunkPolicy = { first: 4, growth: 2, max: 32 };

/** A fixed chunk size (tests use it to compare chunkings). */
export const fixedChunks = (size: number): ChunkPolicy => ({ first: size, growth: 1, max: size });

export function validateChunkPolicy(p: ChunkPolicy): ChunkPolicy {
  const ok =
    Number.isInteger(p.first) && p.first >= 1 && Number.isInteger(p.max) && p.max >= p.first && p.growth >= 1;
  if (!ok) throw new RangeError(`invalid chunk policy ${JSON.stringify(p)}`);
  return p;
}

/** Sizes of the chunk runs, in order; the last one is cut to what is left. */
export function* chunkSizes(policy: ChunkPolicy, totalTokens: number): Generator<number> {
  let size = policy.first;
  let left = totalTokens;
  while (left > 0) {
    const n = Math.min(size, left);
    yield n;
    left -= n;
    size = Math.min(policy.max, Math.ceil(size * policy.growth));
  }
}
