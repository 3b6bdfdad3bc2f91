// UTF-8 as sentencepiece's decoder reads byte pieces: a sequence counts only if it is complete,
// shortest-form and names a Unicode scalar value; otherwise its first byte alone becomes U+FFFD
// and reading resumes at the next byte. (TextDecoder differs: it replaces a truncated sequence
// by a single U+FFFD, so it cannot be used here.)

export const REPLACEMENT = '\uFFFD';

const isTrail = (b: number) => (b & 0xc0) === 0x80;

/** Bytes the lead byte `b` announces (1 for ASCII and for bytes that cannot start a sequence). */
export function announcedLength(b: number): number {
  if (b < 0x80) return 1;
  if ((b & 0xe0) === 0xc0) return 2;
  if ((b & 0xf0) === 0xe0) return 3;
  if ((b & 0xf8) === 0xf0) return 4;
  return 1;
}

/**
 * Code point of the valid sequence at bytes[at, end), or -1 when the byte at `at` starts no
 * valid sequence within that range.
 */
export function codePointAt(bytes: ArrayLike<number>, at: number, end: number): number {
  const b0 = bytes[at]!;
  if (b0 < 0x80) return b0;
  const length = announcedLength(b0);
  if (length === 1 || at + length > end) return -1;
  const b1 = bytes[at + 1]!;
  if (!isTrail(b1)) return -1;
  if (length === 2) {
    const cp = ((b0 & 0x1f) << 6) | (b1 & 0x3f);
    return cp >= 0x80 ? cp : -1;
  }
  const b2 = bytes[at + 2]!;
  if (!isTrail(b2)) return -1;
  if (length === 3) {
    const cp = ((b0 & 0x0f) << 12) | ((b1 & 0x3f) << 6) | (b2 & 0x3f);
    return cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff) ? cp : -1;
  }
  const b3 = bytes[at + 3]!;
  if (!isTrail(b3)) return -1;
  const cp = ((b0 & 0x07) << 18) | ((b1 & 0x3f) << 12) | ((b2 & 0x3f) << 6) | (b3 & 0x3f);
  return cp >= 0x10000 && cp <= 0x10ffff ? cp : -1;
}

/** UTF-8 length of a code point. */
export function encodedLength(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/** Decodes a run of byte pieces the way sentencepiece does. */
export function decodeByteRun(bytes: ArrayLike<number>, start: number, end: number): string {
  let out = '';
  let at = start;
  while (at < end) {
    const cp = codePointAt(bytes, at, end);
    if (cp < 0) {
      out += REPLACEMENT;
      at += 1;
    } else {
      out += String.fromCodePoint(cp);
      at += encodedLength(cp);
    }
  }
  return out;
}

/**
 * True when the bytes at [at, end) can no longer become a valid sequence however many bytes
 * follow (a byte that should continue the sequence does not), so U+FFFD is already certain.
 */
export function cannotComplete(bytes: ArrayLike<number>, at: number, end: number): boolean {
  const length = announcedLength(bytes[at]!);
  if (length === 1) return bytes[at]! >= 0x80;
  for (let i = at + 1; i < end && i < at + length; i++) if (!isTrail(bytes[i]!)) return true;
  return false;
}
