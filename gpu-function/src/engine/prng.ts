// The host-side random source for in-graph sampling. Each request gets its own generator, so
// the same seed gives the same uniforms (and therefore the same tokens) on any run, any
// machine and any chunking. xoshiro128** (32-bit words, fast with Math.imul), seeded through
// splitmix64 so that nearby seeds give unrelated streams.

const MASK64 = (1n << 64n) - 1n;

function splitmix64(state: bigint): { next: bigint; value: bigint } {
  const next = (state + 0x9e3779b97f4a7c15n) & MASK64;
  let z = next;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return { next, value: z ^ (z >> 31n) };
}

const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k));

export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Any integer seed (negative ones wrap to 64 bits). */
  constructor(seed: number | bigint) {
    let state = BigInt.asUintN(64, BigInt(seed));
    const words: number[] = [];
    for (let i = 0; i < 2; i++) {
      const r = splitmix64(state);
      state = r.next;
      words.push(Number(r.value & 0xffffffffn), Number(r.value >> 32n));
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 24 bits, so the value is exact in float32 (what the graph reads). */
  nextUniform(): number {
    return (this.nextUint32() >>> 8) / 16777216;
  }
}

/**
 * The seed of sample `index` of a request seeded with `seed`: sample 0 uses the seed itself
 * (so n = 1 is unchanged), the others streams splitmix spreads apart.
 */
export function sampleSeed(seed: number, index: number): bigint {
  return BigInt.asUintN(64, BigInt(seed) + BigInt(index) * 0x9e3779b97f4a7c15n);
}

/** A fresh seed for requests that did not ask for one (a safe integer, so it can be echoed). */
export function randomSeed(): number {
  const words = crypto.getRandomValues(new Uint32Array(2));
  return (words[0] ?? 0) * 2 ** 21 + ((words[1] ?? 0) >>> 11);
}
