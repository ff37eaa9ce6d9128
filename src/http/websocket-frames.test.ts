import { randomBytes } from 'node:crypto';
import { closeFrame, type FeedResult, MessageInspector, type MessageKind, type Verdict } from './websocket-frames';

/** One frame as a client (masked) or server (unmasked) would write it. */
function frame(opcode: number, payload: Buffer, options: { fin?: boolean; masked?: boolean; rsv?: number } = {}): Buffer {
  const fin = options.fin ?? true;
  const masked = options.masked ?? true;
  const b0 = (fin ? 0x80 : 0) | (options.rsv ?? 0) | opcode;
  let head: Buffer;
  if (payload.length < 126) head = Buffer.from([b0, (masked ? 0x80 : 0) | payload.length]);
  else if (payload.length < 65536) {
    head = Buffer.from([b0, (masked ? 0x80 : 0) | 126, 0, 0]);
    head.writeUInt16BE(payload.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = (masked ? 0x80 : 0) | 127;
    head.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  if (!masked) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!;
  return Buffer.concat([head, key, body]);
}

function inspector(options: { masked?: boolean; max?: number; deny?: string; oversized?: Verdict } = {}) {
  const judged: { text: string; kind: MessageKind }[] = [];
  const out: Buffer[] = [];
  const oversized: number[] = [];
  const inspect = new MessageInspector({
    masked: options.masked ?? true,
    maxMessageBytes: options.max ?? 1024,
    judge: (payload, kind) => {
      judged.push({ text: payload.toString(), kind });
      return options.deny !== undefined && payload.toString().includes(options.deny) ? 'deny' : 'pass';
    },
    oversized: (bytes) => {
      oversized.push(bytes);
      return options.oversized ?? 'deny';
    },
  });
  const feed = (bytes: Buffer): FeedResult => inspect.feed(bytes, (b) => out.push(Buffer.from(b)));
  return { feed, judged, out: () => Buffer.concat(out), oversized };
}

describe('MessageInspector', () => {
  test('a masked text message is unmasked for judging and passed on byte for byte', () => {
    const t = inspector();
    const wire = frame(0x1, Buffer.from('hello'));
    expect(t.feed(wire)).toEqual({ kind: 'ok' });
    expect(t.judged).toEqual([{ text: 'hello', kind: 'text' }]);
    expect(t.out().equals(wire)).toBe(true);
  });

  test('fragments are held until the message is complete; control frames in between pass at once', () => {
    const t = inspector({ masked: false });
    const first = frame(0x2, Buffer.from('ab'), { fin: false, masked: false });
    const ping = frame(0x9, Buffer.from('p'), { masked: false });
    const last = frame(0x0, Buffer.from('cd'), { masked: false });
    t.feed(first);
    expect(t.out().length).toBe(0);
    t.feed(ping);
    expect(t.out().equals(ping)).toBe(true);
    t.feed(last);
    expect(t.judged).toEqual([
      { text: 'p', kind: 'control' },
      { text: 'abcd', kind: 'binary' },
    ]);
    expect(t.out().equals(Buffer.concat([ping, first, last]))).toBe(true);
  });

  test('bytes fed one at a time give the same result', () => {
    const t = inspector();
    const wire = Buffer.concat([frame(0x1, Buffer.alloc(300, 0x41)), frame(0x1, Buffer.from('x'))]);
    for (const byte of wire) expect(t.feed(Buffer.from([byte])).kind).toBe('ok');
    expect(t.judged.map((j) => j.text.length)).toEqual([300, 1]);
    expect(t.out().equals(wire)).toBe(true);
  });

  test('a denied message is not passed on, nor anything after it', () => {
    const t = inspector({ deny: 'SECRET' });
    const clean = frame(0x1, Buffer.from('ok'));
    expect(t.feed(Buffer.concat([clean, frame(0x1, Buffer.from('a SECRET')), frame(0x1, Buffer.from('later'))]))).toEqual({ kind: 'deny' });
    expect(t.out().equals(clean)).toBe(true);
    expect(t.feed(frame(0x1, Buffer.from('more')))).toEqual({ kind: 'ok' });
    expect(t.out().equals(clean)).toBe(true);
  });

  test('the reason of a close frame is judged; its code is not', () => {
    const t = inspector({ deny: 'SECRET' });
    const payload = Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('SECRET')]);
    expect(t.feed(frame(0x8, payload)).kind).toBe('deny');
    expect(t.judged).toEqual([{ text: 'SECRET', kind: 'control' }]);
  });

  test('over the bound: deny stops before anything of the message passes; pass streams it unjudged', () => {
    const denied = inspector({ max: 10 });
    expect(denied.feed(frame(0x1, Buffer.alloc(6, 0x61), { fin: false })).kind).toBe('ok');
    expect(denied.feed(frame(0x0, Buffer.alloc(6, 0x61)).subarray(0, 7)).kind).toBe('too-big');
    expect(denied.out().length).toBe(0);
    expect(denied.oversized).toEqual([12]);

    const passed = inspector({ max: 10, oversized: 'pass' });
    const wire = Buffer.concat([
      frame(0x1, Buffer.alloc(6, 0x61), { fin: false }),
      frame(0x0, Buffer.alloc(200, 0x62), { fin: false }),
      frame(0x0, Buffer.alloc(3, 0x63)),
      frame(0x1, Buffer.from('next')),
    ]);
    expect(passed.feed(wire).kind).toBe('ok');
    expect(passed.out().equals(wire)).toBe(true);
    expect(passed.judged).toEqual([{ text: 'next', kind: 'text' }]);
  });

  test.each([
    ['reserved bits (a compressed frame)', frame(0x1, Buffer.from('x'), { rsv: 0x40 }), true],
    ['an unmasked client frame', frame(0x1, Buffer.from('x'), { masked: false }), true],
    ['a masked server frame', frame(0x1, Buffer.from('x')), false],
    ['a continuation outside a message', frame(0x0, Buffer.from('x')), true],
    ['an unknown opcode', frame(0x3, Buffer.from('x')), true],
    ['a fragmented control frame', frame(0x9, Buffer.from('x'), { fin: false }), true],
  ])('%s is a protocol error', (_name, wire, masked) => {
    expect(inspector({ masked }).feed(wire).kind).toBe('protocol-error');
  });

  test('close frames: masked towards the origin, plain towards the client', () => {
    const plain = closeFrame(1008, 'policy', false);
    expect([...plain.subarray(0, 4)]).toEqual([0x88, 8, 0x03, 0xf0]);
    expect(plain.subarray(4).toString()).toBe('policy');
    const masked = closeFrame(1008, 'policy', true);
    expect(masked[1]).toBe(0x80 | 8);
    const t = inspector({ masked: true });
    expect(t.feed(masked).kind).toBe('ok');
    expect(t.judged).toEqual([{ text: 'policy', kind: 'control' }]);
  });
});
