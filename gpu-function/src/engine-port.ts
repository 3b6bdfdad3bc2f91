// What the service needs from a generation engine (../engine/ implements it). Kept small so
// the scheduler and routes do not depend on how the engine runs the graph.
import type { FinishReason } from '../../shared/src/protocol/generate.ts';
import type { ResolvedRequest } from './engine/request.ts';

/** The engine's own request shape, with every default filled in except the seed. */
export type EngineParams = Omit<ResolvedRequest, 'seed'> & { seed?: number };

export interface EngineResult {
  finishReason: Exclude<FinishReason, 'error'>;
  promptTokens: number;
  completionTokens: number;
  prefillMs: number;
  decodeMs: number;
  /** Bytes crossing the host/runtime boundary per generated token. */
  bytesPerToken: number;
}

export interface GenerationEngine {
  /** Execution provider in use ('cuda' or 'cpu'). */
  readonly provider: string;
  /** False once the engine cannot serve any more (its worker died). */
  readonly alive: boolean;
  /** Streams chunks of new ids; returns the summary. Stops within one chunk after `signal` aborts. */
  generate(params: EngineParams, signal: AbortSignal): AsyncGenerator<number[], EngineResult>;
  close(): Promise<void>;
}

/** Opens an engine on a verified model folder (the session-create phase). */
export type EngineFactory = (modelDir: string) => Promise<GenerationEngine>;
