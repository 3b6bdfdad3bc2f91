// WEIGHTS for `npm start`: a checkpoint converted to int4 lands in the local bucket under its own
// prefix (next to the float32 one, each found again on the next run), a converted folder is
// labelled with its form, and WEIGHTS with MODEL_URI or a bad value is refused before anything starts.

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { convertCheckpoint } from '../../../gpu-function/src/convert/convert.ts';
import { createS3Client } from '../../../gpu-function/src/weights/s3-client.ts';
import { givenModel } from '../../../scripts/lib/stack/given-model.ts';
import { memoryLog } from '../../../scripts/lib/stack/log.ts';
import { BUCKET, S3_CREDENTIALS, startS3Server } from '../../../scripts/lib/stack/s3-server.ts';
import { parseWeights, seedModel } from '../../../scripts/lib/stack/seed-model.ts';
import { startStack } from '../../../scripts/lib/stack/stack.ts';
import { hasFixtures, TINY } from '../convert/helpers.ts';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'jslm-stack-weights-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('WEIGHTS', () => {
  it('accepts float32, int8 and int4; anything else is refused with the choices', () => {
    expect(parseWeights(undefined)).toBeUndefined();
    expect(parseWeights('int4')).toBe('int4');
    expect(() => parseWeights('q4')).toThrow("WEIGHTS must be float32, int8 or int4 (got 'q4')");
  });

  it('with MODEL_URI is refused: a converted model keeps its form', async () => {
    const start = startStack({
      dataDir: path.join(scratch, 'refused'),
      secretsFile: path.join(scratch, 'refused.vars'),
      ports: { edge: 0, gpu: 0, s3: 0 },
      modelUri: 's3://models/x',
      weights: 'int4',
      idleTimeoutS: 1,
      log: memoryLog(),
    });
    await expect(start).rejects.toThrow(/WEIGHTS applies to a model npm start converts/);
  });

  it.skipIf(!hasFixtures)(
    'converts a checkpoint to int4 under its own prefix and finds it again',
    async () => {
      const log = memoryLog();
      const s3 = await startS3Server({ dir: path.join(scratch, 's3'), port: 0, log });
      const client = createS3Client({
        endpoint: s3.endpoint,
        region: 'us-east-1',
        ...S3_CREDENTIALS,
        sessionToken: undefined,
      });
      try {
        const seed = (weights: 'int4' | 'float32') =>
          seedModel({
            client,
            bucket: BUCKET,
            checkpoint: TINY,
            weights,
            workDir: path.join(scratch, 'work'),
            cacheRoot: path.join(scratch, 'cache'),
            log,
          });
        const int4 = await seed('int4');
        expect(int4).toMatchObject({ kind: 'checkpoint', reused: false });
        expect(int4.label).toMatch(/\(int4, blocks of 32\)$/);
        const key = `${new URL(int4.uri.replace('s3://', 'http://')).pathname.slice(1)}/manifest.json`;
        const body = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
        const manifest = JSON.parse(await body.Body!.transformToString());
        expect(manifest.quantization).toMatchObject({ dtype: 'int4', blockSize: 32 });
        expect(log.text()).toMatch(/converting .* \(int4, blocks of 32, for the CPU\)/);

        const float = await seed('float32');
        expect(float.uri).not.toBe(int4.uri);
        expect(await seed('int4')).toMatchObject({ uri: int4.uri, reused: true });
      } finally {
        client.destroy();
        await s3.process.stop(2000);
      }
    },
  );

  it.skipIf(!hasFixtures)('a converted folder given as MODEL_URI is labelled with its form', async () => {
    const dir = path.join(scratch, 'int8-folder');
    await convertCheckpoint({ checkpointDir: TINY, outDir: dir, quantize: { dtype: 'int8' } });
    const client = createS3Client({
      endpoint: 'http://127.0.0.1:9',
      region: 'us-east-1',
      ...S3_CREDENTIALS,
      sessionToken: undefined,
    });
    try {
      const model = await givenModel(dir, client, BUCKET);
      expect(model.label).toBe(`converted folder ${dir} (int8, read in place)`);
    } finally {
      client.destroy();
    }
  });
});
