import { randomBytes } from 'node:crypto';

/**
 * WebSocket framing (RFC 6455 section 5) for inspection, without I/O: bytes of one direction
 * go in, the same bytes come out once the message they belong to has been judged. Messages
 * (text, binary, fragmented into continuation frames) are reassembled up to a bound and handed
 * to `judge` unmasked; control frames (ping, pong, close) are judged on their own, since their
 * payload is application data too. Frames are passed on exactly as received, masking included,
 * so the peer sees what the sender wrote. Nothing is forwarded before its message is judged.
 */

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;

export type Verdict = 'pass' | 'deny';

export type MessageKind = 'text' | 'binary' | 'control';

export interface InspectorOptions {
  /** Client-to-server frames must be masked, server-to-client frames must not (RFC 6455 5.1). */
  readonly masked: boolean;
  /** Largest message reassembled for judging (all its fragments together). */
  readonly maxMessageBytes: number;
  /** A complete message (or control frame payload), unmasked. */
  readonly judge: (payload: Buffer, kind: MessageKind) => Verdict;
  /** A message larger than the bound: 'pass' streams it on unjudged, 'deny' stops the connection. */
  readonly oversized: (declaredBytes: number) => Verdict;
}

/** `too-big`: a message over the bound that `oversized` denied. */
export type FeedResult = { readonly kind: 'ok' } | { readonly kind: 'deny' } | { readonly kind: 'too-big' } | { readonly kind: 'protocol-error'; readonly reason: string };

const OK: FeedResult = Object.freeze({ kind: 'ok' });
const DENY: FeedResult = Object.freeze({ kind: 'deny' });
const TOO_BIG: FeedResult = Object.freeze({ kind: 'too-big' });

interface FrameHead {
  readonly fin: boolean;
  readonly rsv: number;
  readonly opcode: number;
  readonly masked: boolean;
  readonly headLength: number;
  readonly payloadLength: number;
  readonly maskKey: Buffer | null;
}

/** Parses a frame head; null = more bytes needed. Lengths past 2^53 are refused by the caller. */
function parseHead(buf: Buffer): FrameHead | null | { readonly error: string } {
  if (buf.length < 2) return null;
  const b0 = buf[0]!;
  const b1 = buf[1]!;
  const masked = (b1 & 0x80) !== 0;
  let length = b1 & 0x7f;
  let at = 2;
  if (length === 126) {
    if (buf.length < 4) return null;
    length = buf.readUInt16BE(2);
    at = 4;
  } else if (length === 127) {
    if (buf.length < 10) return null;
    const big = buf.readBigUInt64BE(2);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) return { error: 'a frame longer than 2^53 bytes' };
    length = Number(big);
    at = 10;
  }
  let maskKey: Buffer | null = null;
  if (masked) {
    if (buf.length < at + 4) return null;
    maskKey = buf.subarray(at, at + 4);
    at += 4;
  }
  return { fin: (b0 & 0x80) !== 0, rsv: b0 & 0x70, opcode: b0 & 0x0f, masked, headLength: at, payloadLength: length, maskKey };
}

function unmask(payload: Buffer, key: Buffer | null): Buffer {
  const out = Buffer.from(payload);
  if (key) for (let i = 0; i < out.length; i++) out[i]! ^= key[i & 3]!;
  return out;
}

/** One direction of a WebSocket connection under inspection. */
export class MessageInspector {
  private pending: Buffer = Buffer.alloc(0);
  /** Raw frames of the message being reassembled, and their unmasked payloads. */
  private heldFrames: Buffer[] = [];
  private heldPayload: Buffer[] = [];
  private heldBytes = 0;
  private messageKind: MessageKind | null = null;
  /** Bytes of the current frame to pass on unjudged (an oversized message let through). */
  private passRemaining = 0;
  /** The rest of the current message passes unjudged. */
  private passingMessage = false;
  private stopped = false;

  constructor(private readonly options: InspectorOptions) {}

  /** Feeds bytes as read; `forward` receives what may go on, in order. */
  feed(chunk: Buffer, forward: (bytes: Buffer) => void): FeedResult {
    if (this.stopped) return OK;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    for (;;) {
      if (this.passRemaining > 0) {
        if (this.pending.length === 0) return OK;
        const n = Math.min(this.passRemaining, this.pending.length);
        forward(this.pending.subarray(0, n));
        this.pending = this.pending.subarray(n);
        this.passRemaining -= n;
        continue;
      }
      const head = parseHead(this.pending);
      if (head === null) return OK;
      if ('error' in head) return this.fail(head.error);
      const result = this.frame(head, forward);
      if (result === 'more') return OK;
      if (result !== OK) return result;
    }
  }

  private fail(reason: string): FeedResult {
    this.stopped = true;
    return { kind: 'protocol-error', reason };
  }

  private frame(head: FrameHead, forward: (bytes: Buffer) => void): FeedResult | 'more' {
    const { opcode, fin, payloadLength } = head;
    // No extension is negotiated on an inspected connection, so a reserved bit has no meaning
    // (RFC 6455 5.2); compressed (RSV1) data could not be judged either.
    if (head.rsv !== 0) return this.fail('a frame with reserved bits set (no extension was negotiated)');
    if (head.masked !== this.options.masked) return this.fail(this.options.masked ? 'an unmasked frame from the client' : 'a masked frame from the server');
    const control = opcode >= 0x8;
    if (control) {
      if (opcode > 0xa) return this.fail(`unknown control opcode ${opcode}`);
      if (!fin || payloadLength > 125) return this.fail('a fragmented or oversized control frame');
    } else if (opcode > OP_BINARY) {
      return this.fail(`unknown data opcode ${opcode}`);
    } else if ((opcode === OP_CONTINUATION) !== (this.messageKind !== null || this.passingMessage)) {
      return this.fail(opcode === OP_CONTINUATION ? 'a continuation frame outside a message' : 'a new message inside a fragmented one');
    }
    if (!control && this.passingMessage) {
      // The rest of an oversized message that was let through: streamed on as it comes.
      forward(this.take(head.headLength));
      this.passRemaining = payloadLength;
      if (fin) this.passingMessage = false;
      return OK;
    }
    if (!control && this.heldBytes + payloadLength > this.options.maxMessageBytes) {
      if (this.options.oversized(this.heldBytes + payloadLength) === 'deny') {
        this.deny();
        return TOO_BIG;
      }
      for (const frame of this.heldFrames) forward(frame);
      this.resetMessage();
      forward(this.take(head.headLength));
      this.passRemaining = payloadLength;
      this.passingMessage = !fin;
      return OK;
    }
    const total = head.headLength + payloadLength;
    if (this.pending.length < total) return 'more';
    const raw = Buffer.from(this.take(total));
    const payload = unmask(raw.subarray(head.headLength), head.maskKey);
    if (control) {
      // The close code (first two bytes) is protocol; its reason and ping/pong payloads are data.
      const data = opcode === OP_CLOSE ? payload.subarray(Math.min(2, payload.length)) : payload;
      if (data.length > 0 && this.options.judge(data, 'control') === 'deny') return this.deny();
      forward(raw);
      return OK;
    }
    if (opcode !== OP_CONTINUATION) this.messageKind = opcode === OP_TEXT ? 'text' : 'binary';
    this.heldFrames.push(raw);
    this.heldPayload.push(payload);
    this.heldBytes += payloadLength;
    if (!fin) return OK;
    const message = this.heldPayload.length === 1 ? this.heldPayload[0]! : Buffer.concat(this.heldPayload);
    if (this.options.judge(message, this.messageKind ?? 'binary') === 'deny') return this.deny();
    for (const frame of this.heldFrames) forward(frame);
    this.resetMessage();
    return OK;
  }

  private take(n: number): Buffer {
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(n);
    return out;
  }

  private deny(): FeedResult {
    this.stopped = true;
    this.resetMessage();
    return DENY;
  }

  private resetMessage(): void {
    this.heldFrames = [];
    this.heldPayload = [];
    this.heldBytes = 0;
    this.messageKind = null;
  }
}

/**
 * A close frame (RFC 6455 5.5.1) with a status code and a short reason. Frames the gateway
 * sends to the origin are masked, as a client's must be; frames to the client are not.
 */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const text = Buffer.from(reason.slice(0, 120), 'utf8').subarray(0, 123);
  const payload = Buffer.alloc(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  const head = Buffer.from([0x80 | OP_CLOSE, (masked ? 0x80 : 0) | payload.length]);
  if (!masked) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i & 3]!;
  return Buffer.concat([head, key, payload]);
}
