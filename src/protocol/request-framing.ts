import { NEED_MORE, type ParseResult, invalid, parsed } from './parse-result';

/**
 * Follows a client's HTTP/1.x byte stream message by message (RFC 9112) to find where each
 * request line starts, and checks each request line strictly, before Node's parser sees the
 * bytes. Node 20's llhttp accepts `GET  /path HTTP/1.1` (several spaces between the parts)
 * and offers no option to refuse it, and its request line is not exposed after parsing, so
 * this is the only place where the gateway can hold clients to RFC 9112 section 3:
 *
 *   request-line = method SP request-target SP HTTP-version CRLF   (exactly one SP each)
 *
 * Sans-io: `push()` takes each chunk as it arrives, in order, and answers
 * - `needMore`: every byte so far is consistent; feed the next chunk;
 * - `invalid`: a request line (or the framing needed to find the next one) is malformed;
 *   `tooLarge` when a single line passed `maxLineBytes`. Sticky: later pushes say the same;
 * - `parsed`: a CONNECT request's head ended `consumed` bytes into this chunk; what follows is
 *   another protocol and is not looked at (Node switches there too, whatever the body headers
 *   say). Later pushes answer `needMore` without looking.
 *
 * Framing mirrors what Node's strict parser accepts for requests: no body without
 * Content-Length or Transfer-Encoding; Content-Length digits only and once; Transfer-Encoding
 * ending in chunked and never with Content-Length; chunk sizes in hex then CRLF or `;`
 * extensions; CRLF after chunk data; trailers up to an empty line; CR and LF skipped before a
 * request line. A message Node would frame differently is refused here rather than guessed at;
 * Node refuses nearly all of those too (not a Content-Length past 2^53, nor HTTP/0.9's
 * `GET /path`, which no client of a proxy sends). Upgrades are the caller's business: the
 * bytes after an `Upgrade` request are read as HTTP until the server has actually switched.
 *
 * Cost: one indexOf per line of the head and a byte loop over the request line only; a
 * Content-Length body costs O(1) per chunk whatever its size, a chunked body one indexOf per
 * chunk-size line. Bodies are never copied or decoded; a line split across chunks is kept as
 * its pieces and joined once.
 */

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SEMICOLON = 0x3b;

/** RFC 9110 5.6.2 tchar: what a method and a field name are made of. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** Hex digit values, -1 for anything else. */
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}

const CONNECT = Buffer.from('CONNECT', 'latin1');
const CONTENT_LENGTH = Buffer.from('content-length', 'latin1');
const TRANSFER_ENCODING = Buffer.from('transfer-encoding', 'latin1');
const HTTP_SLASH = Buffer.from('HTTP/', 'latin1');

/**
 * Why a request line is not `method SP request-target SP HTTP-version`, or null when it is.
 * `line` excludes the CRLF. The target is visible ASCII (RFC 9112 3.2; Node refuses the rest).
 */
export function requestLineProblem(line: Buffer, start = 0, end = line.length): string | null {
  let i = start;
  while (i < end && TCHAR[line[i]!] === 1) i++;
  if (i === start) return 'the request line does not start with a method';
  if (i === end || line[i] !== SP) return 'the method is not followed by a single space';
  const target = ++i;
  while (i < end && line[i]! > SP && line[i]! < 0x7f) i++;
  if (i === target) return line[i] === SP ? 'more than one space after the method' : 'no request target';
  if (i === end) return 'no HTTP version (HTTP/0.9 is not served)';
  if (line[i] !== SP) return 'the request target contains a character other than visible ASCII';
  i++;
  if (line[i] === SP) return 'more than one space before the HTTP version';
  const v = i;
  const isVersion = end - v === 8 && line.compare(HTTP_SLASH, 0, 5, v, v + 5) === 0 && isDigit(line[v + 5]!) && line[v + 6] === 0x2e && isDigit(line[v + 7]!);
  return isVersion ? null : 'the request line does not end with HTTP/d.d';
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** `buf[start, end)` equals `lower` ignoring ASCII case (`lower` is lower case). */
function equalsIgnoringCase(buf: Buffer, start: number, end: number, lower: Buffer): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if ((buf[start + i]! | 0x20) !== lower[i]) return false;
  return true;
}

function trimOws(text: string): string {
  let a = 0;
  let b = text.length;
  while (a < b && (text.charCodeAt(a) === SP || text.charCodeAt(a) === HTAB)) a++;
  while (b > a && (text.charCodeAt(b - 1) === SP || text.charCodeAt(b - 1) === HTAB)) b--;
  return text.slice(a, b);
}

enum State {
  LineStart,
  RequestLine,
  HeaderLine,
  Body,
  ChunkSize,
  ChunkSizeLf,
  ChunkExtension,
  ChunkData,
  ChunkDataCr,
  ChunkDataLf,
  TrailerLine,
  Switched,
  Invalid,
}

export interface RequestFramingOptions {
  /** Longest request line, header or trailer line kept while it arrives in pieces. */
  readonly maxLineBytes: number;
}

export type RequestFramingResult = ParseResult<{ readonly protocol: 'connect' }> & { readonly tooLarge?: boolean };

export class RequestFramingTracker {
  private state = State.LineStart;
  private failure: { readonly kind: 'invalid'; readonly reason: string; readonly tooLarge?: boolean } | null = null;
  /** Pieces of a line that began in an earlier chunk. */
  private pieces: Buffer[] = [];
  private pieceBytes = 0;
  private isConnect = false;
  private contentLength = -1;
  private transferEncoding: string | null = null;
  /** Body bytes left (Content-Length), or chunk data bytes left. */
  private remaining = 0;
  private chunkSize = 0;
  private chunkDigits = 0;
  /** Whether the last byte of a chunk extension seen so far was CR. */
  private extensionEndsWithCr = false;
  /** Requests whose head has been checked, for tests and logs. */
  requests = 0;
  /**
   * Whether the violation lies inside a request's body (chunk framing or trailers): that
   * request was handed on and will never end well, so nothing after it will be answered.
   */
  failedInBody = false;

  constructor(private readonly options: RequestFramingOptions) {}

  /** Whether the stream has left HTTP/1 (after CONNECT) and is no longer looked at. */
  get switched(): boolean {
    return this.state === State.Switched;
  }

  push(chunk: Buffer): RequestFramingResult {
    if (this.failure) return this.failure;
    if (this.state === State.Switched) return NEED_MORE;
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case State.LineStart: {
          // RFC 9112 2.2: empty lines before a request line are ignored (Node skips any CR or LF).
          while (i < n && (chunk[i] === CR || chunk[i] === LF)) i++;
          if (i < n) this.beginMessage();
          break;
        }
        case State.RequestLine:
        case State.HeaderLine:
        case State.TrailerLine: {
          const lf = chunk.indexOf(LF, i);
          if (lf === -1) {
            this.keepPiece(chunk.subarray(i));
            i = n;
            break;
          }
          const done = this.pieceBytes === 0 ? this.onLine(chunk, i, lf) : this.onJoinedLine(chunk.subarray(i, lf));
          i = lf + 1;
          if (done === 'switched') return parsed({ protocol: 'connect' }, i);
          break;
        }
        case State.Body: {
          const take = Math.min(this.remaining, n - i);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.state = State.LineStart;
          break;
        }
        case State.ChunkSize: {
          const value = HEX[chunk[i]!]!;
          if (value >= 0) {
            this.chunkSize = this.chunkSize * 16 + value;
            this.chunkDigits++;
            if (this.chunkSize > Number.MAX_SAFE_INTEGER) return this.fail('chunk size too large');
            i++;
          } else if (this.chunkDigits === 0) return this.fail('a chunk does not start with its size in hex');
          else if (chunk[i] === CR) {
            this.state = State.ChunkSizeLf;
            i++;
          } else if (chunk[i] === SEMICOLON) {
            this.state = State.ChunkExtension;
            this.extensionEndsWithCr = false;
            i++;
          } else return this.fail('a chunk size is followed by something other than CRLF or an extension');
          break;
        }
        case State.ChunkSizeLf: {
          if (chunk[i] !== LF) return this.fail('a chunk size line does not end with CRLF');
          i++;
          this.endChunkSizeLine();
          break;
        }
        case State.ChunkExtension: {
          // Its syntax is Node's to check; only where its line ends matters here.
          const lf = chunk.indexOf(LF, i);
          if (lf === -1) {
            this.extensionEndsWithCr = chunk[n - 1] === CR;
            i = n;
            break;
          }
          const crBefore = lf > i ? chunk[lf - 1] === CR : this.extensionEndsWithCr;
          if (!crBefore) return this.fail('a chunk extension does not end with CRLF');
          i = lf + 1;
          this.endChunkSizeLine();
          break;
        }
        case State.ChunkData: {
          const take = Math.min(this.remaining, n - i);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.state = State.ChunkDataCr;
          break;
        }
        case State.ChunkDataCr: {
          if (chunk[i] !== CR) return this.fail('chunk data is not followed by CRLF');
          this.state = State.ChunkDataLf;
          i++;
          break;
        }
        case State.ChunkDataLf: {
          if (chunk[i] !== LF) return this.fail('chunk data is not followed by CRLF');
          this.state = State.ChunkSize;
          this.chunkSize = 0;
          this.chunkDigits = 0;
          i++;
          break;
        }
        default:
          return this.failure ?? NEED_MORE;
      }
      if (this.failure) return this.failure;
    }
    return NEED_MORE;
  }

  private beginMessage(): void {
    this.state = State.RequestLine;
    this.isConnect = false;
    this.contentLength = -1;
    this.transferEncoding = null;
  }

  private keepPiece(piece: Buffer): void {
    if (piece.length === 0) return;
    this.pieceBytes += piece.length;
    if (this.pieceBytes > this.options.maxLineBytes) {
      this.fail(`a line of the request head is longer than ${this.options.maxLineBytes} bytes`, true);
      return;
    }
    // Copied: the caller may reuse the chunk's memory once push() returns.
    this.pieces.push(Buffer.from(piece));
  }

  private onJoinedLine(last: Buffer): 'switched' | null {
    const line = Buffer.concat([...this.pieces, last]);
    this.pieces = [];
    this.pieceBytes = 0;
    return this.onLine(line, 0, line.length);
  }

  /** One line, `buf[start, lf)`, its LF at `lf` (excluded). */
  private onLine(buf: Buffer, start: number, lf: number): 'switched' | null {
    if (lf - start > this.options.maxLineBytes) {
      this.fail(`a line of the request head is longer than ${this.options.maxLineBytes} bytes`, true);
      return null;
    }
    // Every line of a head ends with CRLF, and a CR anywhere else is refused (RFC 9112 2.2).
    const cr = buf.indexOf(CR, start);
    if (cr !== lf - 1 || lf === start) {
      this.fail(this.state === State.RequestLine ? 'the request line does not end with CRLF' : 'a header line does not end with CRLF or holds a bare CR');
      return null;
    }
    const end = lf - 1;
    if (this.state === State.RequestLine) {
      const problem = requestLineProblem(buf, start, end);
      if (problem) {
        this.fail(problem);
        return null;
      }
      this.isConnect = buf[start + CONNECT.length] === SP && buf.compare(CONNECT, 0, CONNECT.length, start, start + CONNECT.length) === 0;
      this.state = State.HeaderLine;
      return null;
    }
    if (this.state === State.TrailerLine) {
      if (end === start) this.state = State.LineStart;
      return null;
    }
    if (end === start) return this.endHead();
    this.onField(buf, start, end);
    return null;
  }

  private onField(buf: Buffer, start: number, end: number): void {
    // RFC 9112 5.2: obsolete line folding is refused; Node does too.
    if (buf[start] === SP || buf[start] === HTAB) {
      this.fail('a header line starts with whitespace (obsolete line folding)');
      return;
    }
    const colon = buf.indexOf(COLON, start);
    if (colon === -1 || colon >= end || colon === start) {
      this.fail('a header line without a field name and colon');
      return;
    }
    for (let i = start; i < colon; i++) {
      if (TCHAR[buf[i]!] !== 1) {
        this.fail('a header field name holds a character that is not a token character');
        return;
      }
    }
    if (equalsIgnoringCase(buf, start, colon, CONTENT_LENGTH)) {
      const value = trimOws(buf.toString('latin1', colon + 1, end));
      if (this.contentLength !== -1) this.fail('Content-Length appears more than once');
      else if (!/^[0-9]{1,15}$/.test(value)) this.fail('Content-Length is not a number of bytes');
      else this.contentLength = Number(value);
    } else if (equalsIgnoringCase(buf, start, colon, TRANSFER_ENCODING)) {
      const value = buf.toString('latin1', colon + 1, end);
      this.transferEncoding = this.transferEncoding === null ? value : `${this.transferEncoding},${value}`;
    }
  }

  /** The empty line after the header fields: how the body (if any) is framed. */
  private endHead(): 'switched' | null {
    this.requests++;
    if (this.isConnect) {
      this.state = State.Switched;
      return 'switched';
    }
    if (this.transferEncoding !== null) {
      if (this.contentLength !== -1) {
        this.fail('Transfer-Encoding together with Content-Length');
        return null;
      }
      const codings = this.transferEncoding.split(',');
      if (trimOws(codings[codings.length - 1]!).toLowerCase() !== 'chunked') {
        this.fail('Transfer-Encoding does not end with chunked');
        return null;
      }
      this.state = State.ChunkSize;
      this.chunkSize = 0;
      this.chunkDigits = 0;
      return null;
    }
    if (this.contentLength > 0) {
      this.state = State.Body;
      this.remaining = this.contentLength;
      return null;
    }
    this.state = State.LineStart;
    return null;
  }

  private endChunkSizeLine(): void {
    if (this.chunkSize === 0) {
      this.state = State.TrailerLine;
      return;
    }
    this.state = State.ChunkData;
    this.remaining = this.chunkSize;
  }

  private fail(reason: string, tooLarge = false): { readonly kind: 'invalid'; readonly reason: string; readonly tooLarge?: boolean } {
    if (!this.failure) {
      this.failure = tooLarge ? { ...invalid(reason), tooLarge } : invalid(reason);
      this.failedInBody = this.state !== State.RequestLine && this.state !== State.HeaderLine && this.state !== State.LineStart;
    }
    this.state = State.Invalid;
    this.pieces = [];
    return this.failure;
  }
}
