// What the service needs from a generation engine (../engine/ implements it). Kept small so
// the scheduler and routes do not depend on how the engine runs the graph.
import type { FinishReason } from '../../shared/src/protocol/generate.ts';
import type { GenerationChunk } from './engine/engine.ts';
import type { RunReport } from './engine/protocol.ts';
import type { ResolvedRequest } from './engine/request.ts';

/** One engine call: a prompt and some of its samples, every default filled in except the seed. */
export type EngineParams = Omit<ResolvedRequest, 'seed'> & { seed?: number };

export type EngineChunk = GenerationChunk;

export interface EngineChoice {
  index: number;
  finishReason: Exclude<FinishReason, 'error' | 'cancelled'>;
  completionTokens: number;
}

export interface EngineResult {
  choices: EngineChoice[];
  promptTokens: number;
  completionTokens: number;
  seed: number;
  prefillMs: number;
  decodeMs: number;
  /** Bytes crossing the host/runtime boundary per generated token (this call's share). */
  bytesPerToken: number;
}

/** One run of the graph, as metrics see it. */
export type EngineRun = Omit<RunReport, 'requests'>;

export interface GenerationEngine {
  /** Execution provider in use ('cuda' or 'cpu'). */
  readonly provider: string;
  /** False once the engine cannot serve any more (its worker died). */
  readonly alive: boolean;
  /** Key/value cache bytes one token holds (all layers, keys and values). */
  readonly kvBytesPerToken: number;
  /** Streams chunks of new ids; returns the summary. Stops within one chunk after `signal` aborts. */
  generate(params: EngineParams, signal: AbortSignal): AsyncGenerator<EngineChunk, EngineResult>;
  /** Calls `listener` after every run of the graph. */
  onRun(listener: (run: EngineRun) => void): void;
  close(): Promise<void>;
}

/** Opens an engine on a verified model folder (the session-create phase). */
export type EngineFactory = (modelDir: string) => Promise<GenerationEngine>;
