// `convert --checkpoint DIR --out DIR [--dtype float32|float16] [--weights int4|int8]`: a Hugging
// Face checkpoint (safetensors or PyTorch .bin, single or sharded) to the folder the GPU function
// serves, optionally with block-quantized linear layers.
// Progress goes to stderr; on success the output folder's path is printed on stdout.

import { parseArgs } from 'node:util';
import { CheckpointError } from '../../gpu-function/src/checkpoint/errors.ts';
import {
  ConvertError,
  type ConvertProgress,
  convertCheckpoint,
} from '../../gpu-function/src/convert/convert.ts';
import { DEFAULT_BLOCK_SIZE } from '../../gpu-function/src/convert/quantize.ts';
import { BLOCK_SIZES, type QuantizedDtype } from '../../gpu-function/src/model/quantized-linear.ts';
import { createProgress, formatBytes, type Progress } from '../lib/progress.ts';

const USAGE = `usage: npm run -s cli -- convert --checkpoint DIR --out DIR [--dtype float32|float16]
                      [--compute-dtype float32|float16] [--weights int4|int8 [--block-size N]]
                      [--variant NAME] [--force]
  --checkpoint      Hugging Face checkpoint folder: config.json + model*.safetensors or pytorch_model*.bin
  --out             output folder (must not exist unless --force replaces an earlier conversion)
  --dtype           weight type of the output, default float32 (CPU); float16 for the GPU
  --compute-dtype   graph compute type, default the same as --dtype
  --weights         quantize the linear layers and the LM head to int4 or int8 in blocks (the
                    input embedding becomes float16, the layer norms stay --dtype)
  --block-size      values per quantization block: ${BLOCK_SIZES.join(', ')}; default ${DEFAULT_BLOCK_SIZE}
  --variant         weight variant to read, e.g. fp16 for model.fp16.safetensors
`;

const DTYPES = ['float32', 'float16'] as const;
const QUANTIZED = ['int4', 'int8'] as const;
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
        weights: { type: 'string' },
        'block-size': { type: 'string' },
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
  const weights = values.weights as string | undefined;
  const blockText = values['block-size'] as string | undefined;
  let quantize: { dtype: QuantizedDtype; blockSize: number } | undefined;
  if (weights !== undefined) {
    if (!(QUANTIZED as readonly string[]).includes(weights)) {
      return usageError(`--weights must be int4 or int8 (got '${weights}')`);
    }
    const blockSize = blockText === undefined ? DEFAULT_BLOCK_SIZE : Number(blockText);
    if (!BLOCK_SIZES.includes(blockSize)) {
      return usageError(`--block-size must be one of ${BLOCK_SIZES.join(', ')} (got '${blockText}')`);
    }
    quantize = { dtype: weights as QuantizedDtype, blockSize };
  } else if (blockText !== undefined) return usageError('--block-size needs --weights int4|int8');

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
      quantize,
      variant: values.variant as string | undefined,
      overwrite: values.force === true,
      onProgress,
      signal: abort.signal,
    });
    bar?.done(result.weights);
    const size = result.manifest.files.reduce((a, f) => a + f.size, 0);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const form = quantize ? `${quantize.dtype} (blocks of ${quantize.blockSize}; the rest ${dtype})` : dtype;
    process.stderr.write(
      `converted ${result.manifest.source.format} (${result.manifest.source.dtypes.join('/')}) to ${form}: ` +
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
