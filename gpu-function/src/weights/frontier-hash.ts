// Hashes a file while its parts are still arriving out of order: whenever the parts right
// after the hashed prefix are complete, they are read back (from the page cache, just written)
// and fed to SHA-256. When the last part lands the digest is nearly done, so verification
// overlaps the download instead of following it. What is hashed is what is on disk.
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

const READ_CHUNK = 1 << 20;

export class FrontierHash {
  private readonly hash: Hash = createHash('sha256');
  private readonly done = new Set<number>();
  private next = 0;
  private chain: Promise<void> = Promise.resolve();
  /** A read failed (e.g. the file was closed after an aborted load): no digest, hash from disk. */
  private failed = false;
  private readonly file: FileHandle;
  private readonly size: number;
  private readonly partBytes: number;
  private readonly parts: number;
  private readonly buffer = Buffer.allocUnsafe(READ_CHUNK);

  constructor(file: FileHandle, size: number, partBytes: number, alreadyDone: readonly number[]) {
    this.file = file;
    this.size = size;
    this.partBytes = partBytes;
    this.parts = Math.ceil(size / partBytes);
    for (const i of alreadyDone) this.done.add(i);
    this.advance();
  }

  /** Records a finished part and hashes forward as far as the parts are contiguous. */
  partDone(index: number): void {
    this.done.add(index);
    this.advance();
  }

  private advance(): void {
    this.chain = this.chain.then(async () => {
      while (!this.failed && this.next < this.parts && this.done.has(this.next)) {
        const start = this.next * this.partBytes;
        const end = Math.min(this.size, start + this.partBytes);
        for (let at = start; at < end; ) {
          const want = Math.min(READ_CHUNK, end - at);
          const { bytesRead } = await this.file.read(this.buffer, 0, want, at);
          if (bytesRead === 0) throw new Error(`unexpected end of file at ${at}`);
          this.hash.update(this.buffer.subarray(0, bytesRead));
          at += bytesRead;
        }
        this.next++;
      }
    });
    this.chain = this.chain.catch(() => {
      this.failed = true;
    });
  }

  /** The file's SHA-256 once every part is in; null if some part never arrived. */
  async digest(): Promise<string | null> {
    await this.chain;
    return !this.failed && this.next === this.parts ? this.hash.digest('hex') : null;
  }
}
