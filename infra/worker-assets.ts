// `node infra/worker-assets.ts`: writes what the Worker bundles but git does not hold, so a
// deploy works from a fresh clone: the compiled tokenizer (.cache/tokenizer/nerdstash-v1.bin),
// from TOKENIZER_MODEL, the shared fixture, or a download from the Hugging Face hub.
import { consoleLog } from '../scripts/lib/stack/log.ts';
import { prepareTokenizer } from '../scripts/lib/stack/tokenizer.ts';

try {
  await prepareTokenizer(process.env, consoleLog());
} catch (err) {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
