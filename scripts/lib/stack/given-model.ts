// MODEL_URI given to `npm start`: a model already converted, served as it is. Either a folder in
// the local bucket (uploaded with `npm run -s cli -- upload`) or a converted folder on disk
// (loaded straight from there; no object storage, no second copy: the thrifty way for a 7B).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { objectKey, parseS3Uri } from '../../../gpu-function/src/weights/s3-uri.ts';
import type { ServedModel } from './seed-model.ts';

/** "int4, " for a folder of quantized weights (its manifest says so), else nothing. */
function formOf(dir: string): string {
  try {
    const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    const dtype = manifest?.quantization?.dtype;
    return typeof dtype === 'string' ? `${dtype}, ` : '';
  } catch {
    return ''; // the GPU function reports a bad manifest when it loads the folder
  }
}

export async function givenModel(uri: string, client: S3Client, bucket: string): Promise<ServedModel> {
  if (!uri.startsWith('s3://')) {
    const dir = path.resolve(uri);
    if (!existsSync(path.join(dir, 'manifest.json'))) {
      throw new Error(`MODEL_URI=${uri}: ${dir} is not a converted model folder (no manifest.json)`);
    }
    return {
      kind: 'converted',
      label: `converted folder ${dir} (${formOf(dir)}read in place)`,
      uri: dir,
      reused: true,
    };
  }
  const location = parseS3Uri(uri);
  if (location.bucket !== bucket) {
    throw new Error(`MODEL_URI=${uri}: the local object storage has only the bucket '${bucket}'`);
  }
  try {
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: objectKey(location, 'manifest.json') }));
  } catch {
    throw new Error(
      `MODEL_URI=${uri}: no manifest.json there; upload a converted folder first ` +
        `(npm run -s cli -- upload --model DIR --to ${uri}, see README "Real weights")`,
    );
  }
  return { kind: 'converted', label: `converted model ${uri}`, uri, reused: true };
}
