// `convert --checkpoint DIR --out DIR [--dtype float32|float16]`: a Hugging Face checkpoint
// (safetensors or PyTorch .bin, single or sharded) to the folder the GPU function serves.
// Progress goes to stderr; on success the output folder's path is printed on stdout.

import { parseArgs } from 'node:util';
import { CheckpointError } from '../../gpu-function/src/checkpoint/errors.ts';
import {
  ConvertError,
  type ConvertProgress,
  convertCheckpoint,
} from '../../gpu-function/src/convert/convert.ts';
import { createProgress, formatBytes, type Progress } from '../lib/progress.ts';

const USAGE = `usage: npm run -s cli -- convert --checkpoint DIR --out DIR [--dtype float32|float16]
                      [--compute-dtype float32|float16] [--variant NAME] [--force]
  --checkpoint      Hugging Face checkpoint folder: config.json + model*.safetensors or pytorch_model*.bin
  --out             output folder (must not exist unless --force replaces an earlier conversion)
  --dtype           weight type of the output, default float32 (CPU); float16 for the GPU
  --compute-dtype   graph compute type, default the same as --dtype
  --variant         weight variant to read, e.g. fp16 for model.fp16.safetensors
`;

const DTYPES = ['float32', 'float16'] as const;
type Dtype = (typeof DTYPES)[number];

function isDtype(v: string | undefined): v is Dtype {
  return v !== undefined && (DTYPES as readonly string[]).includes(v);
}

function usageError(message: string): number {
  process.stderr.write(`convert: ${message}\n\n${USAGE}`);
  return 2;
}

export async function run(args: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: args.slice(1),
      options: {
        checkpoint: { type: 'string' },
        out: { type: 'string' },
        dtype: { type: 'string' },
        'compute-dtype': { type: 'string' },
        variant: { type: 'string' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    return usageError((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const checkpointDir = values.checkpoint as string | undefined;
  const outDir = values.out as string | undefined;
  const dtype = (values.dtype as string | undefined) ?? 'float32';
  const computeDtype = (values['compute-dtype'] as string | undefined) ?? dtype;
  if (!checkpointDir) return usageError('--checkpoint is required');
  if (!outDir) return usageError('--out is required');
  if (!isDtype(dtype)) return usageError(`--dtype must be float32 or float16 (got '${dtype}')`);
  if (!isDtype(computeDtype))
    return usageError(`--compute-dtype must be float32 or float16 (got '${computeDtype}')`);

  // Ctrl-C aborts cleanly: the converter removes its temporary folder.
  const abort = new AbortController();
  const onSignal = () => abort.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let bar: Progress | undefined;
  let reported = 0;
  const onProgress = (p: ConvertProgress) => {
    if (p.stage !== 'weights') return;
    if (!bar) bar = createProgress('weights', { total: p.total });
    bar.tick(p.done - reported);
    reported = p.done;
  };
  const started = performance.now();
  try {
    const result = await convertCheckpoint({
      checkpointDir,
      outDir,
      dtype,
      computeDtype,
      variant: values.variant as string | undefined,
      overwrite: values.force === true,
      onProgress,
      signal: abort.signal,
    });
    bar?.done(result.weights);
    const size = result.manifest.files.reduce((a, f) => a + f.size, 0);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    process.stderr.write(
      `converted ${result.manifest.source.format} (${result.manifest.source.dtypes.join('/')}) to ${dtype}: ` +
        `${formatBytes(size)} (graphs are built for ${result.manifest.computeDtype} when it is served), in ${seconds}s\n`,
    );
    process.stdout.write(`${result.outDir}\n`);
    return 0;
  } catch (err) {
    if (bar) process.stderr.write('\n');
    if (abort.signal.aborted) {
      process.stderr.write('convert: interrupted; no output written\n');
      return 130;
    }
    if (err instanceof CheckpointError || err instanceof ConvertError) {
      process.stderr.write(`convert: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
