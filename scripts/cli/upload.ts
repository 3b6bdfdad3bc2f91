// `npm run -s cli -- upload --model DIR --to s3://bucket/prefix [--create-bucket] [--replace]`
// Uploads a converted model folder (multipart, manifest last; a prefix that already holds a
// manifest only with --replace, and its manifest is never removed). Endpoint and credentials come
// from the same settings the GPU function reads: S3_ENDPOINT, S3_REGION, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY.
import { CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { readSettings } from '../../gpu-function/src/settings.ts';
import { createS3Client, describeS3Error } from '../../gpu-function/src/weights/s3-client.ts';
import { parseS3Uri } from '../../gpu-function/src/weights/s3-uri.ts';
import { type UploadProgress, uploadModel } from '../../gpu-function/src/weights/upload-model.ts';

const USAGE = `usage: npm run -s cli -- upload --model DIR --to s3://bucket/prefix [--create-bucket] [--part-mb N] [--replace]

Uploads a converted model folder to S3-compatible storage; manifest.json goes last.
A prefix that already holds a model is refused: upload each version under a new prefix
(.../v2) and point MODEL_URI at it. --replace overwrites it in place (the old manifest stays
until the new one is written; instances loading meanwhile fail their checksum and retry).
Storage settings come from the environment: S3_ENDPOINT, S3_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
`;

interface UploadArgs {
  model: string;
  to: string;
  createBucket: boolean;
  partMb: number;
  replace: boolean;
}

function parseArgs(args: string[]): UploadArgs | string {
  const out: Partial<UploadArgs> = { createBucket: false, partMb: 16, replace: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = () => {
      const v = args[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--model') out.model = value();
    else if (a === '--to') out.to = value();
    else if (a === '--create-bucket') out.createBucket = true;
    else if (a === '--replace') out.replace = true;
    else if (a === '--part-mb') {
      const n = Number(value());
      if (!Number.isFinite(n) || n < 5) return '--part-mb must be a number of MiB, at least 5';
      out.partMb = n;
    } else if (a === '--help' || a === '-h') return '';
    else return `unknown option '${a}'`;
  }
  if (!out.model) return 'missing --model DIR';
  if (!out.to) return 'missing --to s3://bucket/prefix';
  return out as UploadArgs;
}

/** A one-line progress bar, redrawn in place on a terminal, every 10% otherwise. */
function progressPrinter(stream: NodeJS.WriteStream) {
  const start = performance.now();
  let lastDecile = -1;
  return (p: UploadProgress, final = false) => {
    const frac = p.totalBytes === 0 ? 1 : p.uploadedBytes / p.totalBytes;
    const seconds = (performance.now() - start) / 1000;
    const rate = seconds > 0 ? p.uploadedBytes / seconds / 1e6 : 0;
    const width = 30;
    const filled = Math.round(frac * width);
    const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(frac * 100).toFixed(1).padStart(5)}% ${(p.uploadedBytes / 1e6).toFixed(1)}/${(p.totalBytes / 1e6).toFixed(1)} MB ${rate.toFixed(1)} MB/s ${p.file}`;
    if (stream.isTTY) {
      stream.write(`\r${line.padEnd(stream.columns ? stream.columns - 1 : 100)}${final ? '\n' : ''}`);
      return;
    }
    const decile = Math.floor(frac * 10);
    if (decile > lastDecile || (final && decile !== lastDecile)) {
      lastDecile = decile;
      stream.write(`${line}\n`);
    }
  };
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseArgs(args.slice(1));
  if (typeof parsed === 'string') {
    process.stderr.write(parsed === '' ? USAGE : `upload: ${parsed}\n\n${USAGE}`);
    return parsed === '' ? 0 : 2;
  }
  let location: ReturnType<typeof parseS3Uri>;
  try {
    location = parseS3Uri(parsed.to);
  } catch (err) {
    process.stderr.write(`upload: ${(err as Error).message}\n`);
    return 2;
  }
  const { config } = readSettings(process.env);
  const client = createS3Client(config.s3);
  try {
    if (parsed.createBucket) {
      const exists = await client.send(new HeadBucketCommand({ Bucket: location.bucket })).then(
        () => true,
        () => false,
      );
      if (!exists) {
        await client.send(new CreateBucketCommand({ Bucket: location.bucket })).catch((err: unknown) => {
          throw new Error(describeS3Error(err, `bucket ${location.bucket}`));
        });
      }
    }
    const show = progressPrinter(process.stderr);
    let last: UploadProgress | null = null;
    const result = await uploadModel({
      client,
      location,
      modelDir: parsed.model,
      partBytes: parsed.partMb * 1024 * 1024,
      replace: parsed.replace,
      onProgress: (p) => {
        last = p;
        show(p);
      },
    });
    if (last) show(last, true);
    process.stdout.write(
      `uploaded ${result.files} files (${(result.bytes / 1e6).toFixed(1)} MB) to ${parsed.to}; manifest.json last\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`\nupload failed: ${(err as Error).message}\n`);
    return 1;
  } finally {
    client.destroy();
  }
}
