// A minimal protobuf wire-format reader: just enough to walk a SentencePiece ModelProto.
// Fields are visited in order; the caller decides which field numbers it understands and
// skips the rest, so unknown or newer fields never break loading.

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LENGTH_DELIMITED = 2;
export const WIRE_FIXED32 = 5;

export class ProtobufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtobufError';
  }
}

export class ProtoReader {
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private pos: number;
  private readonly end: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length, view?: DataView) {
    this.bytes = bytes;
    // Embedded messages share their parent's view: a model has tens of thousands of them.
    this.view = view ?? new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
    this.end = end;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** Reads a field key; returns the field number and wire type. */
  key(): { field: number; wire: number } {
    const k = this.varint();
    return { field: Math.floor(k / 8), wire: k % 8 };
  }

  /** Reads an unsigned varint up to 2^53 (larger values lose precision; no field we read needs them). */
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtobufError('truncated varint');
      const b = this.bytes[this.pos++]!;
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
    throw new ProtobufError('varint longer than 10 bytes');
  }

  /** int32 fields are sign-extended to 64 bits on the wire; their low 32 bits are the value. */
  int32(): number {
    let low = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtobufError('truncated varint');
      const b = this.bytes[this.pos++]!;
      if (i < 5) low |= (b & 0x7f) << (7 * i); // bits past 32 fall off, as intended
      if (b < 0x80) return low;
    }
    throw new ProtobufError('varint longer than 10 bytes');
  }

  bool(): boolean {
    return this.varint() !== 0;
  }

  float(): number {
    this.need(4);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** Returns a view (no copy) of a length-delimited field's payload. */
  bytesField(): Uint8Array {
    const len = this.varint();
    this.need(len);
    const out = this.bytes.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  string(): string {
    const bytes = this.bytesField();
    try {
      return utf8Strict.decode(bytes);
    } catch {
      throw new ProtobufError('string field is not valid UTF-8');
    }
  }

  /** A reader over an embedded message, which is consumed from this reader. */
  message(): ProtoReader {
    const len = this.varint();
    this.need(len);
    const sub = new ProtoReader(this.bytes, this.pos, this.pos + len, this.view);
    this.pos += len;
    return sub;
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        this.need(8);
        this.pos += 8;
        return;
      case WIRE_LENGTH_DELIMITED:
        this.bytesField();
        return;
      case WIRE_FIXED32:
        this.need(4);
        this.pos += 4;
        return;
      default:
        throw new ProtobufError(`unsupported wire type ${wire}`);
    }
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new ProtobufError('truncated field');
  }
}

// ignoreBOM keeps a leading U+FEFF: it is a piece of its own in real models, not a byte order mark.
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
