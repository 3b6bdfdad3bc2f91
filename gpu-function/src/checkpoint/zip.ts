// Just enough of the ZIP format to find entries in a PyTorch checkpoint: the central
// directory (with ZIP64 for archives over 4 GiB) and where each entry's data begins.
// Tensor data must be stored uncompressed so it can be referenced in place.

import type { FileHandle } from 'node:fs/promises';
import { CheckpointError } from './errors.ts';

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const EOCD_SIZE = 22;
const ZIP64_LOCATOR_SIZE = 20;
const MAX_COMMENT = 0xffff;
const MAX_CENTRAL_DIRECTORY_BYTES = 256 * 1024 * 1024;

export const ZIP_STORED = 0;
export const ZIP_DEFLATED = 8;

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Absolute file offset of the entry's (possibly compressed) bytes. */
  dataOffset: number;
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  return buf.subarray(0, bytesRead);
}

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('64-bit value too large');
  return Number(v);
}

interface DirectoryLocation {
  entries: number;
  size: number;
  offset: number;
}

async function findCentralDirectory(
  fh: FileHandle,
  file: string,
  fileSize: number,
): Promise<DirectoryLocation> {
  const tailLength = Math.min(fileSize, EOCD_SIZE + MAX_COMMENT + ZIP64_LOCATOR_SIZE);
  const tailStart = fileSize - tailLength;
  const tail = await readAt(fh, tailStart, tailLength);
  let eocd = -1;
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG && i + EOCD_SIZE + tail.readUInt16LE(i + 20) === tail.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new CheckpointError(`${file}: not a zip archive or truncated (end of central directory not found)`);
  }
  if (tail.readUInt16LE(eocd + 4) !== 0 || tail.readUInt16LE(eocd + 6) !== 0) {
    throw new CheckpointError(`${file}: multi-part zip archives are not supported`);
  }
  let location: DirectoryLocation = {
    entries: tail.readUInt16LE(eocd + 10),
    size: tail.readUInt32LE(eocd + 12),
    offset: tail.readUInt32LE(eocd + 16),
  };
  const locator = eocd - ZIP64_LOCATOR_SIZE;
  if (locator >= 0 && tail.readUInt32LE(locator) === ZIP64_LOCATOR_SIG) {
    const recordOffset = u64(tail, locator + 8);
    const record = await readAt(fh, recordOffset, 56);
    if (record.length < 56 || record.readUInt32LE(0) !== ZIP64_EOCD_SIG) {
      throw new CheckpointError(`${file}: corrupt zip archive (bad ZIP64 end of central directory)`);
    }
    location = { entries: u64(record, 32), size: u64(record, 40), offset: u64(record, 48) };
  }
  // The directory lies before the end records (and before the ZIP64 ones, which precede the EOCD).
  if (location.size > MAX_CENTRAL_DIRECTORY_BYTES || location.offset + location.size > tailStart + eocd) {
    throw new CheckpointError(`${file}: corrupt zip archive (central directory out of range)`);
  }
  return location;
}

/** Fills in the 64-bit values an entry keeps in its ZIP64 extra field (id 1). */
function applyZip64Extra(
  extra: Buffer,
  fields: { size: number; compressedSize: number; localOffset: number },
): void {
  for (let p = 0; p + 4 <= extra.length; ) {
    const id = extra.readUInt16LE(p);
    const len = extra.readUInt16LE(p + 2);
    if (id === 0x0001) {
      let q = p + 4;
      const end = q + len;
      for (const key of ['size', 'compressedSize', 'localOffset'] as const) {
        if (fields[key] === 0xffffffff && q + 8 <= end) {
          fields[key] = u64(extra, q);
          q += 8;
        }
      }
      return;
    }
    p += 4 + len;
  }
}

/** Reads the central directory and each entry's local header; validates that every entry fits in the file. */
export async function readZipEntries(fh: FileHandle, file: string): Promise<Map<string, ZipEntry>> {
  const { size: fileSize } = await fh.stat();
  const where = await findCentralDirectory(fh, file, fileSize);
  const dir = await readAt(fh, where.offset, where.size);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < where.entries; i++) {
    if (p + 46 > dir.length || dir.readUInt32LE(p) !== CENTRAL_SIG) {
      throw new CheckpointError(`${file}: corrupt zip central directory (entry ${i})`);
    }
    const flags = dir.readUInt16LE(p + 8);
    const method = dir.readUInt16LE(p + 10);
    const crc32 = dir.readUInt32LE(p + 16);
    const nameLength = dir.readUInt16LE(p + 28);
    const extraLength = dir.readUInt16LE(p + 30);
    const commentLength = dir.readUInt16LE(p + 32);
    const fields = {
      compressedSize: dir.readUInt32LE(p + 20),
      size: dir.readUInt32LE(p + 24),
      localOffset: dir.readUInt32LE(p + 42),
    };
    const nameStart = p + 46;
    const name = dir.toString('utf8', nameStart, nameStart + nameLength);
    applyZip64Extra(dir.subarray(nameStart + nameLength, nameStart + nameLength + extraLength), fields);
    p = nameStart + nameLength + extraLength + commentLength;
    if (flags & 1) throw new CheckpointError(`${file}: zip entry '${name}' is encrypted`);

    const local = await readAt(fh, fields.localOffset, 30);
    if (local.length < 30 || local.readUInt32LE(0) !== LOCAL_SIG) {
      throw new CheckpointError(`${file}: corrupt zip archive (bad local header for '${name}')`);
    }
    const dataOffset = fields.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    if (dataOffset + fields.compressedSize > fileSize) {
      throw new CheckpointError(`${file}: truncated; zip entry '${name}' ends past the end of the file`);
    }
    entries.set(name, {
      name,
      method,
      crc32,
      compressedSize: fields.compressedSize,
      size: fields.size,
      dataOffset,
    });
  }
  return entries;
}
