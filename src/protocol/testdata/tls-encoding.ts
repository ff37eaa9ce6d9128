/** TLS wire encoding for tests that build ClientHellos byte by byte (RFC 8446 sections 3-5). */

export function u8(value: number): Buffer {
  return Buffer.from([value & 0xff]);
}

export function u16(value: number): Buffer {
  return Buffer.from([(value >> 8) & 0xff, value & 0xff]);
}

/** A vector with a one-byte length prefix. */
export function vec8(body: Buffer): Buffer {
  return Buffer.concat([u8(body.length), body]);
}

/** A vector with a two-byte length prefix. */
export function vec16(body: Buffer): Buffer {
  return Buffer.concat([u16(body.length), body]);
}

/** A handshake message (RFC 8446 section 4) around a body; type 1 is ClientHello. */
export function handshake(body: Buffer, type = 1): Buffer {
  return Buffer.concat([Buffer.from([type, (body.length >> 16) & 0xff, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
}

/** One TLS record; content type 22 is handshake. */
export function record(payload: Buffer, contentType = 22, version = 0x0301): Buffer {
  return Buffer.concat([u8(contentType), u16(version), u16(payload.length), payload]);
}
