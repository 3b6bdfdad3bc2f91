// `npm start`: the whole system on this machine (README "Run it locally"). Object storage
// seeded with a model, the GPU function on the CPU behind a scale-to-zero supervisor, and the
// edge under `wrangler dev`; Ctrl-C stops all of it. Data lives in .data/ and is reused.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { LOCAL_STACK_SETTINGS, loadSettings } from '../shared/src/config.ts';
import { readyBanner } from './lib/stack/banner.ts';
import { consoleLog } from './lib/stack/log.ts';
import { parseWeights } from './lib/stack/seed-model.ts';
import { type Stack, startStack } from './lib/stack/stack.ts';
import { REPO_ROOT } from './lib/tokenizer-asset.ts';

const DEFAULT_DATA_DIR = path.join(REPO_ROOT, '.data');
/** Locally the GPU function gives its memory back after a minute without requests. */
const LOCAL_IDLE_TIMEOUT_S = '60';

const USAGE = `usage: npm start [-- options]

Runs the whole system locally: the API on http://127.0.0.1:8787/v1.

options:
  --data-dir DIR    keys, limits, objects and caches (default .data)
  --edge-port N     the API (default 8787; 0 picks a free port)
  --gpu-port N      the GPU function's supervisor (default 8788)
  --s3-port N       the object storage (default 8789)

environment:
  MODEL_CHECKPOINT  a Hugging Face checkpoint folder to convert and serve (default: the demo model, gibberish)
  MODEL_URI         a converted model instead: s3://models/PREFIX in the local bucket, or a folder
  WEIGHTS           float32 (default), int8 or int4: the form MODEL_CHECKPOINT (or the demo model) is converted to
  TOKENIZER_MODEL   the tokenizer.model file (default ../shared/fixtures/tokenizer/novelai.model)
  LOCAL_API_KEY     the API key to register and print (default: made once, kept in the data folder)
  IDLE_TIMEOUT_S    the GPU function exits after this many idle seconds (default ${LOCAL_IDLE_TIMEOUT_S})
`;

function port(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new Error(`--${flag} must be a port number (0 to 65535)`);
  return n;
}

function idleTimeout(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new Error(`IDLE_TIMEOUT_S must be a number of seconds (0: never exit); got '${text}'`);
  }
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'data-dir': { type: 'string' },
      'edge-port': { type: 'string' },
      'gpu-port': { type: 'string' },
      's3-port': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const settings = loadSettings(LOCAL_STACK_SETTINGS, process.env);
  const dataDir = path.resolve(values['data-dir'] ?? DEFAULT_DATA_DIR);
  // The default place is the one wrangler and the keys CLI read by themselves.
  const secretsFile =
    dataDir === DEFAULT_DATA_DIR ? path.join(REPO_ROOT, '.dev.vars') : path.join(dataDir, 'dev.vars');
  const log = consoleLog();

  let stack: Stack | null = null;
  let stopping = false;
  const stop = async (why: string, bySignal: boolean) => {
    if (stopping) {
      if (!bySignal) return;
      // A second Ctrl-C: leave now; the process guards take the children down with us.
      log.line('stack', 'stopping at once');
      process.exit(130);
    }
    stopping = true;
    log.line('stack', `${why}: stopping`);
    await stack?.stop();
    log.line('stack', 'stopped');
    process.exit(bySignal ? 0 : 1);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => void stop(signal === 'SIGINT' ? 'Ctrl-C' : signal, true));
  }

  stack = await startStack({
    dataDir,
    secretsFile,
    ports: {
      edge: port(values['edge-port'], 8787, 'edge-port'),
      gpu: port(values['gpu-port'], 8788, 'gpu-port'),
      s3: port(values['s3-port'], 8789, 's3-port'),
    },
    modelCheckpoint: settings.MODEL_CHECKPOINT,
    modelUri: process.env.MODEL_URI || undefined,
    weights: parseWeights(settings.WEIGHTS),
    localApiKey: settings.LOCAL_API_KEY,
    idleTimeoutS: idleTimeout(process.env.IDLE_TIMEOUT_S || LOCAL_IDLE_TIMEOUT_S),
    log,
  });
  if (stopping) return 0;
  process.stdout.write(`\n${readyBanner(stack, dataDir)}\n\n`);
  // Something essential died on its own: stop the rest rather than limp on.
  void stack.died.then((why) => stop(why, false));
  return -1;
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`\nnpm start failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
