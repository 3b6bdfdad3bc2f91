// A new demo model (made after the converter changed) replaces the old ones: their objects in
// the bucket and the GPU function's cached copies go, so .data does not grow with every update.
import { rm } from 'node:fs/promises';
import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { cacheDirFor } from '../../../gpu-function/src/model-host.ts';
import type { StackLog } from './log.ts';

export const DEMO_PREFIX = 'demo-';

export async function pruneOldDemos(o: {
  client: S3Client;
  bucket: string;
  keep: string;
  cacheRoot: string;
  log: StackLog;
}): Promise<void> {
  // A demo is a handful of objects, far below one page of a listing.
  const listed = await o.client.send(new ListObjectsV2Command({ Bucket: o.bucket, Prefix: DEMO_PREFIX }));
  const stale = (listed.Contents ?? [])
    .map((c) => c.Key ?? '')
    .filter((key) => key !== '' && !key.startsWith(`${o.keep}/`));
  if (stale.length === 0) return;
  await o.client.send(
    new DeleteObjectsCommand({ Bucket: o.bucket, Delete: { Objects: stale.map((Key) => ({ Key })) } }),
  );
  const prefixes = [...new Set(stale.map((key) => key.split('/')[0]!))];
  for (const prefix of prefixes) {
    await rm(cacheDirFor(o.cacheRoot, { bucket: o.bucket, prefix }), { recursive: true, force: true });
  }
  o.log.line('model', `removed the older demo model(s): ${prefixes.join(', ')}`);
}
