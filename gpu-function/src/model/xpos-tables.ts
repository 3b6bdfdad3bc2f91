// Rotary angles with the XPos scale folded in (spec §5.2), one row per position, computed in
// float64. Each table has R/2 columns (pair j uses column j for both of its dimensions):
//   cosQ[p, j] = cos(p·θ_j) · s_j^power(p)     sinQ[p, j] = sin(p·θ_j) · s_j^power(p)
//   cosK[p, j] = cos(p·θ_j) / s_j^power(p)     sinK[p, j] = sin(p·θ_j) / s_j^power(p)
// with θ_j = base^(−2j/R), s_j = (2j + 0.4R) / (1.4R), power(p) = (p − ⌊M/2⌋) / σ.

import type { ModelConfig } from './config.ts';

export interface XposTables {
  positions: number;
  /** R/2 */
  halfDim: number;
  cosQ: Float64Array;
  sinQ: Float64Array;
  cosK: Float64Array;
  sinK: Float64Array;
}

export function xposTables(c: ModelConfig): XposTables {
  const R = c.rotaryDim;
  const half = R / 2;
  const M = c.maxPositions;
  const centre = Math.floor(M / 2);
  const size = M * half;
  const t: XposTables = {
    positions: M,
    halfDim: half,
    cosQ: new Float64Array(size),
    sinQ: new Float64Array(size),
    cosK: new Float64Array(size),
    sinK: new Float64Array(size),
  };
  for (let p = 0; p < M; p++) {
    const power = (p - centre) / c.scaleBase;
    for (let j = 0; j < half; j++) {
      const theta = c.rotaryBase ** ((-2 * j) / R);
      const scale = ((2 * j + 0.4 * R) / (1.4 * R)) ** power;
      const angle = p * theta;
      const i = p * half + j;
      t.cosQ[i] = Math.cos(angle) * scale;
      t.sinQ[i] = Math.sin(angle) * scale;
      t.cosK[i] = Math.cos(angle) / scale;
      t.sinK[i] = Math.sin(angle) / scale;
    }
  }
  return t;
}
