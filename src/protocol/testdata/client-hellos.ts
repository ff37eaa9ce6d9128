import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientHello } from '../client-hello';
import type { ParseResult } from '../parse-result';
import { handshake, record, u16, u8, vec16, vec8 } from './tls-encoding';

/** Synthetic ClientHellos, record framing, captures and assertions shared by the ClientHello tests. */

export type Extension = readonly [type: number, data: Buffer];

export function ext(type: number, data: Buffer): Extension {
  return [type, data];
}

export function sniExt(name: string | Buffer): Extension {
  const bytes = typeof name === 'string' ? Buffer.from(name, 'latin1') : name;
  return ext(0, vec16(Buffer.concat([u8(0), vec16(bytes)])));
}

export function alpnExt(names: readonly string[]): Extension {
  return ext(16, vec16(Buffer.concat(names.map((name) => vec8(Buffer.from(name, 'latin1'))))));
}

export function versionsExt(versions: readonly number[]): Extension {
  return ext(43, vec8(Buffer.concat(versions.map(u16))));
}

export interface HelloSpec {
  readonly legacyVersion?: number;
  readonly sessionId?: Buffer;
  readonly cipherSuites?: Buffer;
  readonly compression?: Buffer;
  /** null: no extensions block at all (SSL 3.0 / TLS 1.0 style). */
  readonly extensions?: readonly Extension[] | null;
}

/** The ClientHello body per RFC 8446 section 4.1.2, without the handshake header. */
export function helloBody(spec: HelloSpec): Buffer {
  const parts = [
    u16(spec.legacyVersion ?? 0x0303),
    Buffer.alloc(32, 0xab),
    vec8(spec.sessionId ?? Buffer.alloc(32, 0x11)),
    vec16(spec.cipherSuites ?? Buffer.from([0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f])),
    vec8(spec.compression ?? Buffer.from([0])),
  ];
  const extensions = spec.extensions === undefined ? [sniExt('example.com')] : spec.extensions;
  if (extensions !== null) {
    parts.push(vec16(Buffer.concat(extensions.map(([type, data]) => Buffer.concat([u16(type), vec16(data)])))));
  }
  return Buffer.concat(parts);
}

/** Frames a handshake message into records of the given fragment sizes (last one takes the rest). */
export function frame(message: Buffer, fragmentSizes: readonly number[] = []): Buffer {
  const records: Buffer[] = [];
  let offset = 0;
  for (const size of fragmentSizes) {
    records.push(record(message.subarray(offset, offset + size)));
    offset += size;
  }
  for (; offset < message.length; offset += 2 ** 14) {
    records.push(record(message.subarray(offset, Math.min(message.length, offset + 2 ** 14))));
  }
  return Buffer.concat(records);
}

export function hello(spec: HelloSpec = {}): Buffer {
  return frame(handshake(helloBody(spec)));
}

/** The handshake bytes carried by a stream of well-formed handshake records. */
export function unframe(records: Buffer): Buffer {
  const payloads: Buffer[] = [];
  for (let offset = 0; offset < records.length; ) {
    const length = records.readUInt16BE(offset + 3);
    payloads.push(records.subarray(offset + 5, offset + 5 + length));
    offset += 5 + length;
  }
  return Buffer.concat(payloads);
}

export function loadCapture(name: string): Buffer {
  return Buffer.from(readFileSync(join(__dirname, `${name}.hex`), 'utf8').trim(), 'hex');
}

export function expectParsed(result: ParseResult<ClientHello>): ClientHello {
  if (result.kind !== 'parsed') throw new Error(`expected parsed, got ${JSON.stringify(result)}`);
  return result.value;
}

export function expectInvalid(result: ParseResult<ClientHello>, reason: RegExp): void {
  expect(result.kind).toBe('invalid');
  if (result.kind === 'invalid') expect(result.reason).toMatch(reason);
}
