// `fetch tokenizer [--out PATH]` and `fetch model REPO [--out DIR] [--revision REV]`:
// downloads from the Hugging Face hub (HF_ENDPOINT, HF_TOKEN honoured) with resumption.

import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { downloadFile, downloadRepoFiles, listRepoFiles, selectCheckpointFiles } from '../lib/hub.ts';

export const TOKENIZER_REPO = 'NovelAI/nerdstash-tokenizer-v1';
export const DEFAULT_TOKENIZER_PATH = '.cache/tokenizer/novelai.model';

const USAGE = `usage:
  npm run -s cli -- fetch tokenizer [--out PATH]         (default ${DEFAULT_TOKENIZER_PATH})
  npm run -s cli -- fetch model REPO [--out DIR] [--revision REV]
                                                          (default .cache/checkpoints/<name>)
environment: HF_ENDPOINT (mirror), HF_TOKEN (gated or private repositories)
`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: args.slice(1),
    allowPositionals: true,
    options: { out: { type: 'string' }, revision: { type: 'string' }, help: { type: 'boolean' } },
  });
  const [what, repoArg] = positionals;
  if (values.help || !what) {
    process.stderr.write(USAGE);
    return values.help ? 0 : 2;
  }
  const opts = values.revision ? { revision: values.revision } : {};
  if (what === 'tokenizer') {
    const out = resolve(values.out ?? DEFAULT_TOKENIZER_PATH);
    const files = await listRepoFiles(TOKENIZER_REPO, opts);
    const model = files.find((f) => f.path === 'tokenizer.model');
    if (!model) throw new Error(`${TOKENIZER_REPO} has no tokenizer.model`);
    const result = await downloadFile(TOKENIZER_REPO, model, out, opts);
    process.stderr.write(`tokenizer ${result === 'kept' ? 'already present' : 'saved'}: ${out}\n`);
    return 0;
  }
  if (what === 'model') {
    if (!repoArg || !/^[\w.-]+\/[\w.-]+$/.test(repoArg)) {
      process.stderr.write(
        `fetch model needs a repository like stabilityai/japanese-stablelm-base-alpha-7b\n\n${USAGE}`,
      );
      return 2;
    }
    const out = resolve(values.out ?? join('.cache/checkpoints', repoArg.split('/')[1]!));
    const files = selectCheckpointFiles(await listRepoFiles(repoArg, opts));
    const total = files.reduce((a, f) => a + f.size, 0);
    process.stderr.write(
      `fetching ${files.length} files (${(total / 2 ** 30).toFixed(2)} GiB) from ${repoArg} to ${out}\n`,
    );
    await downloadRepoFiles(repoArg, files, out, opts);
    process.stderr.write(
      `checkpoint ready: ${out}\nnext: npm run -s cli -- convert --checkpoint ${out} --out .cache/models/<name>\n`,
    );
    return 0;
  }
  process.stderr.write(`unknown fetch target '${what}'\n\n${USAGE}`);
  return 2;
}
