// The model's hyperparameters, read from a Hugging Face config.json and derived as the
// architecture spec says (../shared/ARCHITECTURE-japanese-stablelm-alpha.md §1, §6).

export interface ModelConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  headSize: number;
  /** Rotary dims per head: int(headSize * rotary_pct). */
  rotaryDim: number;
  rotaryBase: number;
  /** XPos scale base (σ). */
  scaleBase: number;
  maxPositions: number;
  layerNormEps: number;
  /** SwiGLU width, always derived from hiddenSize: 256 * ceil(int(8H/3) / 256). */
  intermediateSize: number;
  eosTokenId: number;
}

export class ModelConfigError extends Error {
  override name = 'ModelConfigError';
}

const SUPPORTED_ARCHITECTURES = new Set(['JapaneseStableLMAlphaForCausalLM']);

function positiveInt(raw: Record<string, unknown>, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new ModelConfigError(`config.json: '${key}' must be a positive integer (got ${JSON.stringify(v)})`);
  }
  return v;
}

function positiveNumber(raw: Record<string, unknown>, key: string, fallback: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ModelConfigError(`config.json: '${key}' must be a positive number (got ${JSON.stringify(v)})`);
  }
  return v;
}

/** Validates a parsed config.json; defaults are those of the reference configuration class (the 7B). */
export function parseModelConfig(raw: unknown): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelConfigError('config.json must be a JSON object');
  }
  const r = raw as Record<string, unknown>;
  const archs = r.architectures;
  if (Array.isArray(archs) && !archs.some((a) => SUPPORTED_ARCHITECTURES.has(String(a)))) {
    throw new ModelConfigError(
      `config.json: unsupported architecture ${JSON.stringify(archs)}; expected JapaneseStableLMAlphaForCausalLM`,
    );
  }
  if (r.use_parallel_residual === false) {
    throw new ModelConfigError(
      'config.json: use_parallel_residual=false is not supported (the model is parallel)',
    );
  }
  if (r.tie_word_embeddings === true) {
    throw new ModelConfigError('config.json: tie_word_embeddings=true is not supported');
  }
  const vocabSize = positiveInt(r, 'vocab_size', 65536);
  const hiddenSize = positiveInt(r, 'hidden_size', 4096);
  const numLayers = positiveInt(r, 'num_hidden_layers', 32);
  const numHeads = positiveInt(r, 'num_attention_heads', 32);
  if (hiddenSize % numHeads !== 0) {
    throw new ModelConfigError(
      `config.json: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`,
    );
  }
  const headSize = hiddenSize / numHeads;
  const rotaryPct = positiveNumber(r, 'rotary_pct', 0.25);
  if (rotaryPct > 1)
    throw new ModelConfigError(`config.json: rotary_pct must be in (0, 1] (got ${rotaryPct})`);
  const rotaryDim = Math.trunc(headSize * rotaryPct);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
    throw new ModelConfigError(`config.json: rotary dims per head must be even and >= 2 (got ${rotaryDim})`);
  }
  const eos = r.eos_token_id ?? 3;
  if (typeof eos !== 'number' || !Number.isInteger(eos) || eos < 0) {
    throw new ModelConfigError(`config.json: 'eos_token_id' must be a non-negative integer`);
  }
  return {
    vocabSize,
    hiddenSize,
    numLayers,
    numHeads,
    headSize,
    rotaryDim,
    rotaryBase: positiveNumber(r, 'rotary_emb_base', 10000),
    scaleBase: positiveNumber(r, 'rotary_scale_base', 512),
    maxPositions: positiveInt(r, 'max_position_embeddings', 2048),
    layerNormEps: positiveNumber(r, 'layer_norm_eps', 1e-5),
    intermediateSize: 256 * Math.ceil(Math.trunc((8 * hiddenSize) / 3) / 256),
    eosTokenId: eos,
  };
}

/** Name and shape of every tensor the forward pass needs (derived buffers excluded). */
export function expectedTensors(c: ModelConfig): Map<string, number[]> {
  const H = c.hiddenSize;
  const m = new Map<string, number[]>();
  m.set('transformer.embed_in.weight', [c.vocabSize, H]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `transformer.layers.${l}`;
    m.set(`${p}.attention.query_key_value.weight`, [3 * H, H]);
    m.set(`${p}.attention.dense.weight`, [H, H]);
    m.set(`${p}.post_attention_layernorm.weight`, [H]);
    m.set(`${p}.post_attention_layernorm.bias`, [H]);
    m.set(`${p}.mlp.packed_input_proj.weight`, [2 * c.intermediateSize, H]);
    m.set(`${p}.mlp.out_proj.weight`, [H, c.intermediateSize]);
  }
  m.set('transformer.final_layer_norm.weight', [H]);
  m.set('transformer.final_layer_norm.bias', [H]);
  m.set('embed_out.weight', [c.vocabSize, H]);
  return m;
}

/** Derived rotary buffers a checkpoint may carry; loaders accept and ignore them. */
/** Key/value cache bytes one token holds: keys and values of every layer, in `dtype`. */
export function kvBytesPerTokenOf(c: ModelConfig, dtype: 'float32' | 'float16'): number {
  return 2 * c.numLayers * c.hiddenSize * (dtype === 'float16' ? 2 : 4);
}

export const IGNORED_TENSOR = /^transformer\.layers\.\d+\.attention\.rotary_emb\.(inv_freq|scale)$/;
