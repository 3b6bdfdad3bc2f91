// A real S3-compatible server (s3rver 3.7.1) on loopback, in this process. `stop` drops every
// open connection at once (like a crashed server); `start` brings it back on the same port and
// data folder.
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

/** s3rver's built-in account; version 3.7.1 checks only the access key id. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export class LocalS3 {
  port = 0;
  readonly dir: string;
  readonly bucket: string;
  private server: S3rver | null = null;

  private constructor(dir: string, bucket: string) {
    this.dir = dir;
    this.bucket = bucket;
  }

  static async create(bucket = 'models'): Promise<LocalS3> {
    const s3 = new LocalS3(await mkdtemp(join(tmpdir(), 's3rver-')), bucket);
    await s3.start();
    return s3;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = new S3rver({
      address: '127.0.0.1',
      port: this.port,
      silent: true,
      directory: this.dir,
      configureBuckets: [{ name: this.bucket, configs: [] }],
    });
    const address = (await server.run()) as { port: number };
    this.port = address.port;
    this.server = server;
  }

  /** Stops at once: open connections are cut, new ones refused. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    const internals = server as unknown as { httpServer: Server; logger: { silent: boolean } };
    // Requests cut short still log on completion, after the logger lost its transport.
    internals.logger.silent = true;
    internals.httpServer.closeAllConnections();
    await server.close();
  }

  /** Stops the server and deletes its data. */
  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
