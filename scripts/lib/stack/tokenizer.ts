// The tokenizer the edge bundles: TOKENIZER_MODEL, else the shared fixture, else downloaded
// from the Hugging Face hub (`fetch tokenizer`); compiled once into .cache/tokenizer/.
import { ensureCompiledTokenizer, findTokenizerModel } from '../tokenizer-asset.ts';
import type { StackLog } from './log.ts';

export async function prepareTokenizer(env: NodeJS.ProcessEnv, log: StackLog): Promise<string> {
  let model: string;
  try {
    model = findTokenizerModel(env);
  } catch (err) {
    if (env.TOKENIZER_MODEL) throw err;
    log.line(
      'tokenizer',
      'no tokenizer model on this machine: downloading it (npm run -s cli -- fetch tokenizer)',
    );
    const { run } = await import('../../cli/fetch.ts');
    const failed = (why: string) =>
      new Error(
        `the tokenizer model could not be downloaded: ${why}. Or set TOKENIZER_MODEL to a tokenizer.model file.`,
      );
    const code = await run(['fetch', 'tokenizer']).catch((e: unknown) => {
      throw failed(e instanceof Error ? e.message : String(e));
    });
    if (code !== 0) throw failed(`fetch tokenizer exited with ${code}`);
    model = findTokenizerModel(env);
  }
  const compiled = await ensureCompiledTokenizer({ model });
  log.line('tokenizer', `${model} (compiled: ${compiled})`);
  return compiled;
}
