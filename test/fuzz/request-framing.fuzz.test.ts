import fc from 'fast-check';
import { RequestFramingTracker } from '../../src/protocol/request-framing';

/** A request as the generator builds it; `body` framing decides how it is written. */
interface Message {
  readonly leadingEmptyLines: number;
  readonly method: string;
  readonly target: string;
  readonly version: '1.1' | '1.0';
  readonly fields: readonly (readonly [string, string])[];
  readonly body:
    | { readonly kind: 'none' }
    | { readonly kind: 'length'; readonly bytes: string }
    | { readonly kind: 'chunked'; readonly chunks: readonly { data: string; extension: string }[]; readonly trailers: readonly (readonly [string, string])[] };
}

/** Bytes a body may hold, weighted towards what a request line and framing are made of. */
const bodyText = fc
  .array(fc.constantFrom('GET  /admin HTTP/1.1\r\n', '\r\n', '\r\n\r\n', ' ', '  ', '0\r\n\r\n', 'a', 'Z', ':', ';', '\t', '\0', '\u00ff', 'Content-Length: 9\r\n'), { maxLength: 12 })
  .map((parts) => parts.join(''));
const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
const fieldValue = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,20}[\x21-\x7e])?$/);
const field = fc.tuple(token, fieldValue).filter(([name]) => !/^(content-length|transfer-encoding|connection|upgrade|proxy-connection|expect)$/i.test(name));

const message: fc.Arbitrary<Message> = fc.record({
  leadingEmptyLines: fc.nat(2),
  method: fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'PATCH'),
  target: fc.oneof(fc.stringMatching(/^\/[\x21-\x7e]{0,24}$/), fc.constant('*'), fc.stringMatching(/^http:\/\/[a-z]{1,8}\.test(:[0-9]{1,5})?\/[\x21-\x7e]{0,12}$/)),
  version: fc.constantFrom('1.1' as const, '1.0' as const),
  fields: fc.array(field, { maxLength: 4 }),
  body: fc.oneof(
    fc.constant({ kind: 'none' as const }),
    bodyText.map((bytes) => ({ kind: 'length' as const, bytes })),
    fc.record({
      kind: fc.constant('chunked' as const),
      chunks: fc.array(fc.record({ data: bodyText.filter((d) => d.length > 0), extension: fc.constantFrom('', ';a=1', ';b="x y"', ';c') }), { maxLength: 3 }),
      trailers: fc.array(field, { maxLength: 2 }),
    }),
  ),
});

function serialise(m: Message, requestLine?: string): string {
  const head = [requestLine ?? `${m.method} ${m.target} HTTP/${m.version}`, ...m.fields.map(([n, v]) => `${n}: ${v}`)];
  // HTTP/1.0 closes after each response unless kept alive; keep every message in play.
  if (m.version === '1.0') head.push('Connection: keep-alive');
  let body = '';
  if (m.body.kind === 'length') {
    head.push(`Content-Length: ${Buffer.byteLength(m.body.bytes, 'latin1')}`);
    body = m.body.bytes;
  } else if (m.body.kind === 'chunked') {
    head.push('Transfer-Encoding: chunked');
    body = m.body.chunks.map((c) => `${Buffer.byteLength(c.data, 'latin1').toString(16)}${c.extension}\r\n${c.data}\r\n`).join('');
    body += `0\r\n${m.body.trailers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  }
  return `${'\r\n'.repeat(m.leadingEmptyLines)}${head.join('\r\n')}\r\n\r\n${body}`;
}

/** Cuts `bytes` at the given points (any order, duplicates ignored). */
function cut(bytes: Buffer, points: readonly number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const p of [...at, bytes.length]) {
    pieces.push(bytes.subarray(from, p));
    from = p;
  }
  return pieces;
}

function feed(pieces: readonly Buffer[]): { verdict: string; reason: string; requests: number } {
  const tracker = new RequestFramingTracker({ maxLineBytes: 64 * 1024 });
  for (const piece of pieces) {
    const result = tracker.push(piece);
    if (result.kind === 'invalid') return { verdict: 'invalid', reason: result.reason, requests: tracker.requests };
    if (result.kind === 'parsed') return { verdict: 'parsed', reason: '', requests: tracker.requests };
  }
  return { verdict: 'needMore', reason: '', requests: tracker.requests };
}

/**
 * Node's own HTTP/1 request parser (llhttp, the one behind http.Server), driven directly: the
 * request heads it completes, and whether it stopped on an error. Internal API, used only as
 * the oracle of this test.
 */
interface NodeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  [key: number]: unknown;
}
const { HTTPParser } = require('node:_http_common') as {
  HTTPParser: { new (): NodeParser; REQUEST: number; kOnHeaders: number; kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number };
};

function nodeHeads(pieces: readonly Buffer[]): { heads: number; error: boolean; upgrade: boolean } {
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {}, 64 * 1024, 0);
  let heads = 0;
  let upgrade = false;
  parser[HTTPParser.kOnHeaders] = () => undefined;
  parser[HTTPParser.kOnBody] = () => undefined;
  parser[HTTPParser.kOnMessageComplete] = () => undefined;
  parser[HTTPParser.kOnHeadersComplete] = (...args: unknown[]) => {
    heads++;
    if (args[7] === true) upgrade = true;
    return 0;
  };
  // An Error from the native parser belongs to another realm under jest: test the type, not the class.
  for (const piece of pieces) if (typeof parser.execute(piece) !== 'number') return { heads, error: true, upgrade };
  return { heads, error: false, upgrade };
}

const splitPoints = fc.array(fc.nat(4000), { maxLength: 12 });

describe('request framing tracker under generated traffic', () => {
  test('valid request sequences split at random points never produce a violation, and every head is counted', () => {
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 4 }), splitPoints, (messages, points) => {
        const bytes = Buffer.from(messages.map((m) => serialise(m)).join(''), 'latin1');
        expect(feed(cut(bytes, points))).toEqual({ verdict: 'needMore', reason: '', requests: messages.length });
        // The oracle agrees that these are valid requests, as many as generated.
        expect(nodeHeads(cut(bytes, points))).toEqual({ heads: messages.length, error: false, upgrade: false });
      }),
      { numRuns: 1500 },
    );
  });

  test('a double space in any request line is always a violation, wherever the stream is cut', () => {
    fc.assert(
      fc.property(
        fc.array(message, { minLength: 1, maxLength: 4 }),
        fc.nat(),
        fc.constantFrom('method', 'version', 'both'),
        fc.integer({ min: 2, max: 4 }),
        splitPoints,
        (messages, which, where, spaces, points) => {
          const bad = which % messages.length;
          const text = messages
            .map((m, i) => {
              if (i !== bad) return serialise(m);
              const gap = ' '.repeat(spaces);
              return serialise(m, `${m.method}${where === 'version' ? ' ' : gap}${m.target}${where === 'method' ? ' ' : gap}HTTP/${m.version}`);
            })
            .join('');
          const result = feed(cut(Buffer.from(text, 'latin1'), points));
          expect(result.verdict).toBe('invalid');
          expect(result.reason).toMatch(/more than one space/);
          expect(result.requests).toBe(bad);
        },
      ),
      { numRuns: 1500 },
    );
  });

  test('mutated traffic: whenever the tracker lets every byte through, Node parses exactly the heads it checked', () => {
    const edit = fc.record({
      at: fc.nat(4000),
      op: fc.constantFrom('insert', 'replace', 'delete'),
      byte: fc.constantFrom(' ', '\t', '\r', '\n', ':', ';', ',', '0', '9', 'a', 'f', 'g', 'G', '/', '\0', '\u0080'),
    });
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 3 }), fc.array(edit, { minLength: 1, maxLength: 3 }), splitPoints, (messages, edits, points) => {
        let text = messages.map((m) => serialise(m)).join('');
        for (const e of edits) {
          const at = e.at % (text.length + 1);
          text = e.op === 'insert' ? text.slice(0, at) + e.byte + text.slice(at) : e.op === 'replace' ? text.slice(0, at) + e.byte + text.slice(at + 1) : text.slice(0, at) + text.slice(at + 1);
        }
        const bytes = Buffer.from(text, 'latin1');
        const tracked = feed(cut(bytes, points));
        if (tracked.verdict !== 'needMore') return;
        const node = nodeHeads([bytes]);
        if (node.upgrade) return;
        // A head Node completed that the tracker did not check would be a request line that
        // reached the parser unvalidated. After a parse error Node stops, so it may see fewer.
        if (node.error) expect(node.heads).toBeLessThanOrEqual(tracked.requests);
        else expect(node.heads).toBe(tracked.requests);
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 5000) },
    );
  });

  test('arbitrary bytes never throw, and a verdict once given stays', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 8 }), (chunks) => {
        const tracker = new RequestFramingTracker({ maxLineBytes: 512 });
        let first: unknown = null;
        for (const chunk of chunks) {
          const result = tracker.push(Buffer.from(chunk));
          if (first !== null && (first as { kind: string }).kind === 'invalid') expect(result).toEqual(first);
          if (result.kind !== 'needMore' && first === null) first = result;
        }
      }),
      { numRuns: 3000 },
    );
  });
});
