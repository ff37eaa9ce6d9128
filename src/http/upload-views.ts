import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { DlpMatch, DlpScan, type ScannerOptions } from '../policy/dlp/scanner';
import { hexDigitValue } from '../protocol/percent-encoding';

/**
 * What DLP must also read besides an upload's bytes as sent: the bytes a server will read once
 * it undoes the upload's Content-Encoding (gzip, deflate, br) and, for an HTML form
 * (`application/x-www-form-urlencoded`), its percent-encoding, where a space is `+` and
 * `-----BEGIN PRIVATE KEY-----` arrives as `-----BEGIN+PRIVATE+KEY-----`. The bytes forwarded
 * are always the client's own; only the scanning sees the decoded view.
 */
export type UploadView = { readonly kind: 'raw' } | { readonly kind: 'decoded'; readonly coding: Coding | null; readonly form: boolean } | { readonly kind: 'unscannable'; readonly reason: string };

type Coding = 'gzip' | 'deflate' | 'br';

const CODINGS: Readonly<Record<string, Coding>> = { gzip: 'gzip', 'x-gzip': 'gzip', deflate: 'deflate', br: 'br' };

/**
 * Decoded bytes allowed per byte received, plus a fixed allowance, before an upload counts as a
 * bomb: JSON and logs compress 500:1 and more, so small uploads get the allowance whatever
 * their ratio, and only large expansions are refused.
 */
const MAX_EXPANSION = 100;
const EXPANSION_ALLOWANCE = 64 * 1024 * 1024;
/** Received bytes held back while their decoded form is scanned; more means decoding lags too far. */
const MAX_HELD_BYTES = 1024 * 1024;

/** Every value of a field, its lines joined as RFC 9110 5.3 allows (a list split over lines is one list). */
function joinedValue(rawHeaders: readonly string[], lowerName: string): string | undefined {
  let joined: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === lowerName) joined = joined === undefined ? rawHeaders[i + 1]! : `${joined}, ${rawHeaders[i + 1]!}`;
  }
  return joined;
}

export function uploadView(rawHeaders: readonly string[]): UploadView {
  const encoding = joinedValue(rawHeaders, 'content-encoding');
  const codings = (encoding ?? '')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  if (codings.length > 1) return { kind: 'unscannable', reason: `the upload has more than one Content-Encoding ("${encoding}")` };
  const first = codings[0];
  const coding = first === undefined ? null : CODINGS[first];
  if (coding === undefined) return { kind: 'unscannable', reason: `the upload's Content-Encoding "${first}" cannot be decoded for inspection` };
  // Two Content-Type lines are no single media type: both are read as forms would be.
  const types = (joinedValue(rawHeaders, 'content-type') ?? '').split(',').map((t) => t.split(';')[0]!.trim().toLowerCase());
  const form = types.includes('application/x-www-form-urlencoded');
  return coding === null && !form ? { kind: 'raw' } : { kind: 'decoded', coding, form };
}

/** Raised when an upload cannot be inspected (a broken or runaway coding): a deny rule refuses it. */
export class UploadUninspectable extends Error {
  override readonly name = 'UploadUninspectable';
}

/** application/x-www-form-urlencoded, decoded as it streams: `+` is a space, `%XX` a byte. */
class FormDecoder {
  private carry: Buffer = Buffer.alloc(0);

  /** Whether an escape cut by the last chunk's end is still waiting for its other bytes. */
  get waiting(): boolean {
    return this.carry.length > 0;
  }

  feed(chunk: Buffer, final: boolean): Buffer {
    const data = this.carry.length === 0 ? chunk : Buffer.concat([this.carry, chunk]);
    const out = Buffer.allocUnsafe(data.length);
    let n = 0;
    let i = 0;
    for (; i < data.length; i++) {
      const byte = data[i]!;
      if (byte === 0x2b) {
        out[n++] = 0x20;
        continue;
      }
      if (byte === 0x25) {
        // An escape cut by the chunk boundary waits for the next chunk.
        if (i + 2 >= data.length && !final) break;
        const hi = hexDigitValue(data[i + 1] ?? -1);
        const lo = hexDigitValue(data[i + 2] ?? -1);
        if (hi >= 0 && lo >= 0) {
          out[n++] = (hi << 4) | lo;
          i += 2;
          continue;
        }
      }
      out[n++] = byte;
    }
    this.carry = Buffer.from(data.subarray(i));
    return out.subarray(0, n);
  }
}

function decoderFor(coding: Coding): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress {
  if (coding === 'gzip') return zlib.createGunzip();
  if (coding === 'deflate') return zlib.createInflate();
  return zlib.createBrotliDecompress();
}

export interface DecodedScanOptions extends ScannerOptions {
  readonly view: Extract<UploadView, { kind: 'decoded' }>;
  /** Log mode: the decoded view could not be read to the end (why), and the rest passes unscanned. */
  readonly onUninspectable: (reason: string) => void;
}

/**
 * A stream stage that passes the upload on unchanged while DLP scans its decoded view. In deny
 * mode a received chunk is held until every byte decoded from it has been scanned and can no
 * longer be part of a match (including an escape it leaves unfinished), and with a
 * Content-Encoding the newest chunk until the next (a decompressor may emit a little of one
 * chunk only with the next), so a match is refused before the bytes that encode it go on.
 * A coding that does not decode, decodes to more than 100 times its size, or lags more than
 * 1 MiB behind is refused in deny mode (UploadUninspectable) and no longer scanned in log
 * mode. Memory: bounded by those limits, never the whole upload.
 */
export function createDecodedScanner(options: DecodedScanOptions): Transform {
  const deny = options.stopOnFirst;
  const scan = new DlpScan(options);
  const decoder = options.view.coding ? decoderFor(options.view.coding) : null;
  const form = options.view.form ? new FormDecoder() : null;
  const pending: { chunk: Buffer; until: number }[] = [];
  let pendingBytes = 0;
  let received = 0;
  let decoded = 0;
  let failure: Error | null = null;
  /** Log mode after a coding failed: the upload passes on unscanned. */
  let gaveUp = false;

  const onDecoded = (bytes: Buffer, final: boolean): void => {
    if (failure || gaveUp) return;
    const view = form ? form.feed(bytes, final) : bytes;
    decoded += view.length;
    if (decoded > MAX_EXPANSION * received + EXPANSION_ALLOWANCE) {
      fail(new UploadUninspectable(`the upload decodes to more than ${MAX_EXPANSION} times its size`));
      return;
    }
    const found = scan.feed(view, final, () => undefined);
    if (found) {
      options.onFinding(found);
      failure = new DlpMatch(found);
    }
  };
  const fail = (error: Error): void => {
    if (deny) failure ??= error;
    else if (!gaveUp) {
      gaveUp = true;
      options.onUninspectable(error.message);
    }
    decoder?.removeAllListeners('data');
  };
  if (decoder) {
    decoder.on('data', (bytes: Buffer) => onDecoded(bytes, false));
    decoder.on('error', (err: Error) => fail(new UploadUninspectable(`the upload's ${options.view.coding} coding does not decode: ${err.message}`)));
  }
  /** Every received chunk whose decoded bytes are all scanned and clear, but never the newest. */
  const release = (push: (b: Buffer) => void, all: boolean): void => {
    const keep = all || !decoder ? 0 : 1;
    while (pending.length > keep && pending[0]!.until <= scan.cleared) {
      const { chunk } = pending.shift()!;
      pendingBytes -= chunk.length;
      push(chunk);
    }
  };
  /** Feeds one received chunk to the decoder; `done` once all it decodes to has been scanned. */
  const decode = (chunk: Buffer, done: () => void): void => {
    if (failure) {
      done();
      return;
    }
    if (!decoder || gaveUp) {
      onDecoded(chunk, false);
      done();
      return;
    }
    if (decoder.readableEnded) {
      // The coded stream ended (and any zero padding after it): more bytes are not part of it.
      fail(new UploadUninspectable(`the upload has bytes after the end of its ${options.view.coding} stream`));
      done();
      return;
    }
    // A decoder that fails is destroyed and may never call back: its error ends the wait too.
    let waiting = true;
    const finish = (): void => {
      if (!waiting) return;
      waiting = false;
      decoder.removeListener('error', finish);
      done();
    };
    decoder.once('error', finish);
    decoder.write(chunk, () => {
      // Output still buffered in the decoder belongs to this chunk: scan it before going on.
      for (let bytes = decoder.read() as Buffer | null; bytes !== null; bytes = decoder.read() as Buffer | null) onDecoded(bytes, false);
      finish();
    });
  };

  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      received += chunk.length;
      if (!deny) this.push(chunk);
      decode(chunk, () => {
        if (failure) {
          callback(failure);
          return;
        }
        if (deny) {
          pending.push({ chunk, until: decoded + (form?.waiting ? 1 : 0) });
          pendingBytes += chunk.length;
          release((b) => this.push(b), false);
          if (pendingBytes > MAX_HELD_BYTES) {
            callback(new UploadUninspectable(`the upload's decoding lags more than ${MAX_HELD_BYTES} bytes behind what was received`));
            return;
          }
        }
        callback();
      });
    },
    flush(callback: TransformCallback) {
      const finish = (): void => {
        onDecoded(Buffer.alloc(0), true);
        if (failure) {
          callback(failure);
          return;
        }
        release((b) => this.push(b), true);
        callback();
      };
      // An empty body has nothing to decode (its "coding" would fail as a truncated stream); a
      // decoder that already ended (a gzip member and zero padding) will not end again.
      if (!decoder || gaveUp || failure || received === 0 || decoder.readableEnded) {
        finish();
        return;
      }
      decoder.once('end', finish);
      decoder.once('error', () => finish());
      decoder.end();
      decoder.resume();
    },
  });
}
