/**
 * A bounds-checked reader over one buffer, for TLS's big-endian integers and length-prefixed
 * vectors (RFC 8446 section 3); every read reports failure instead of throwing.
 */
export class TlsReader {
  private offset: number;

  constructor(
    private readonly bytes: Buffer,
    start = 0,
    private readonly end = bytes.length,
  ) {
    this.offset = start;
  }

  remaining(): number {
    return this.end - this.offset;
  }

  readUint8(): number | null {
    if (this.remaining() < 1) return null;
    const value = this.bytes.readUInt8(this.offset);
    this.offset += 1;
    return value;
  }

  readUint16(): number | null {
    if (this.remaining() < 2) return null;
    const value = this.bytes.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  skip(count: number): boolean {
    if (this.remaining() < count) return false;
    this.offset += count;
    return true;
  }

  /** A sub-reader over the next `length` bytes, which this reader then skips. */
  readVector(length: number): TlsReader | null {
    if (this.remaining() < length) return null;
    const child = new TlsReader(this.bytes, this.offset, this.offset + length);
    this.offset += length;
    return child;
  }

  readBytes(length: number): Buffer | null {
    if (this.remaining() < length) return null;
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }
}
