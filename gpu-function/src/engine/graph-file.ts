// Where the engine's generation graph comes from: built from the model folder when it opens.
import { writeGraph } from '../model-folder/graphs.ts';

export function prepareGenerationGraph(modelDir: string): Promise<string> {
  return writeGraph(modelDir, 'generate');
}
