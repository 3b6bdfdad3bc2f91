// The whole system on one machine, as `npm start` runs it (and the end-to-end tests, on free
// ports and a scratch data folder): object storage seeded with a model, the GPU function behind
// its scale-to-zero supervisor, and the edge under `wrangler dev`.
//
//   <dataDir>/s3/          the bucket's objects (s3rver)
//   <dataDir>/wrangler/    the edge's KV (API keys) and Durable Object (limits) state
//   <dataDir>/gpu-cache/   the GPU function's local copy of the weights
//   <dataDir>/stack/       the local API key; scratch space while a model is converted
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createS3Client } from '../../../gpu-function/src/weights/s3-client.ts';
import { givenModel } from './given-model.ts';
import { ensureLocalKey, type LocalKeyState } from './local-key.ts';
import type { StackLog } from './log.ts';
import { describeExit } from './managed-process.ts';
import { claimPort, LOOPBACK } from './ports.ts';
import { BUCKET, type LocalS3, S3_CREDENTIALS, S3_REGION, startS3Server } from './s3-server.ts';
import { ensureDevVars, localApiKey } from './secrets.ts';
import { type ServedModel, seedModel, type WeightsForm } from './seed-model.ts';
import { GpuSupervisor } from './supervisor.ts';
import { prepareTokenizer } from './tokenizer.ts';
import { startEdge } from './wrangler-dev.ts';

export interface StackOptions {
  dataDir: string;
  /** The edge's secrets (wrangler .dev.vars format); made on the first run. */
  secretsFile: string;
  /** 0 picks a free port. */
  ports: { edge: number; gpu: number; s3: number };
  /** A Hugging Face checkpoint folder; unset serves the demo model. */
  modelCheckpoint?: string | undefined;
  /** A converted model to serve as it is (s3://models/PREFIX or a folder); excludes modelCheckpoint. */
  modelUri?: string | undefined;
  /** The form a model converted here takes (WEIGHTS; unset: float32); not with modelUri. */
  weights?: WeightsForm | undefined;
  /** Fixes the local API key (LOCAL_API_KEY). */
  localApiKey?: string | undefined;
  /** The GPU function exits after this many idle seconds. */
  idleTimeoutS: number;
  log: StackLog;
  /** Where TOKENIZER_MODEL is read from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** More variables for the edge (e.g. COLD_START_TIMEOUT_S). */
  edgeVars?: Record<string, string>;
  /** More settings for the GPU function. */
  gpuEnv?: Record<string, string>;
}

export interface Stack {
  /** The public API (the edge). */
  edgeUrl: string;
  /** The GPU function's address (its supervisor). */
  gpuUrl: string;
  s3Endpoint: string;
  bucket: string;
  apiKey: { key: string; state: LocalKeyState; source: string };
  adminToken: string;
  model: ServedModel;
  supervisor: GpuSupervisor;
  idleTimeoutS: number;
  /** Milliseconds from the call to a ready stack. */
  startMs: number;
  /** Resolves (with what happened) if the edge or the object storage exits by itself. */
  died: Promise<string>;
  stop(): Promise<void>;
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const t0 = performance.now();
  const { log } = o;
  const env = o.env ?? process.env;
  const dataDir = path.resolve(o.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const stoppers: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const stop of stoppers.splice(0).reverse()) await stop().catch(() => {});
  };

  try {
    if (o.modelUri && o.modelCheckpoint) {
      throw new Error(
        'set MODEL_CHECKPOINT (a checkpoint to convert) or MODEL_URI (a converted model), not both',
      );
    }
    if (o.modelUri && o.weights) {
      throw new Error(
        'WEIGHTS applies to a model npm start converts (MODEL_CHECKPOINT or the demo model); ' +
          'a converted model (MODEL_URI) keeps the form its manifest records',
      );
    }
    await prepareTokenizer(env, log);
    const { secrets, added } = ensureDevVars(o.secretsFile);
    if (added.length > 0) log.line('stack', `wrote ${added.join(' and ')} to ${o.secretsFile}`);
    const key = localApiKey(dataDir, o.localApiKey);
    const ports = {
      edge: await claimPort(o.ports.edge, 'the edge'),
      gpu: await claimPort(o.ports.gpu, 'the GPU function'),
      s3: await claimPort(o.ports.s3, 'the object storage'),
    };

    const gpuUrl = `http://${LOOPBACK}:${ports.gpu}`;
    const edgeStarting = startEdge({
      port: ports.edge,
      persistDir: path.join(dataDir, 'wrangler'),
      secretsFile: o.secretsFile,
      vars: { GPU_FUNCTION_URL: gpuUrl, ...o.edgeVars },
      log,
    });
    // The slowest part (bundling, workerd): started first. Stopped on failure even while starting.
    edgeStarting.catch(() => {}); // awaited below; a failure meanwhile is not unhandled
    stoppers.push(async () => (await edgeStarting.catch(() => null))?.process.stop(5000));
    const s3: LocalS3 = await startS3Server({ dir: path.join(dataDir, 's3'), port: ports.s3, log });
    stoppers.push(() => s3.process.stop(2000));
    log.line('s3', `${s3.endpoint} (bucket ${BUCKET}, objects in ${path.join(dataDir, 's3')})`);
    const s3Settings = {
      endpoint: s3.endpoint,
      region: S3_REGION,
      ...S3_CREDENTIALS,
      sessionToken: undefined,
    };
    const client = createS3Client(s3Settings);
    stoppers.push(async () => client.destroy());

    const [model, edge] = await Promise.all([
      o.modelUri
        ? givenModel(o.modelUri, client, BUCKET)
        : seedModel({
            client,
            bucket: BUCKET,
            checkpoint: o.modelCheckpoint,
            weights: o.weights ?? 'float32',
            workDir: path.join(dataDir, 'stack'),
            cacheRoot: path.join(dataDir, 'gpu-cache'),
            log,
          }),
      edgeStarting,
    ]);
    log.line('edge', `ready: ${edge.url}`);

    const supervisor = new GpuSupervisor({
      port: ports.gpu,
      log,
      env: {
        GPU_HMAC_SECRET: secrets.GPU_HMAC_SECRET,
        MODEL_URI: model.uri,
        S3_ENDPOINT: s3.endpoint,
        S3_REGION,
        AWS_ACCESS_KEY_ID: S3_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.secretAccessKey,
        AWS_SESSION_TOKEN: '',
        MODEL_CACHE_DIR: path.join(dataDir, 'gpu-cache'),
        IDLE_TIMEOUT_S: String(o.idleTimeoutS),
        DRAIN_TIMEOUT_S: env.DRAIN_TIMEOUT_S || '5',
        ...o.gpuEnv,
      },
    });
    await supervisor.listen();
    // Stopped first: in-flight streams end cleanly while the edge still passes them on.
    stoppers.push(() => supervisor.close());
    log.line(
      'supervisor',
      `${supervisor.url}: starts the GPU function on the first request; it exits after ${o.idleTimeoutS} s idle`,
    );

    const state = await ensureLocalKey({
      edgeUrl: edge.url,
      adminToken: secrets.ADMIN_TOKEN,
      key: key.key,
      log,
    });
    return {
      edgeUrl: edge.url,
      gpuUrl: supervisor.url,
      s3Endpoint: s3.endpoint,
      bucket: BUCKET,
      apiKey: { key: key.key, state, source: key.source },
      adminToken: secrets.ADMIN_TOKEN,
      model,
      supervisor,
      idleTimeoutS: o.idleTimeoutS,
      startMs: performance.now() - t0,
      died: Promise.race([
        edge.process.exited.then((s) => `the edge (wrangler dev) exited (${describeExit(s)})`),
        s3.process.exited.then((s) => `the object storage (s3rver) exited (${describeExit(s)})`),
      ]),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
