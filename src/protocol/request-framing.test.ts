import { RequestFramingTracker, type RequestFramingResult, requestLineProblem } from './request-framing';

const MAX_LINE = 1024;

/** Feeds `chunks` in order; the first verdict other than needMore, else needMore. */
function track(chunks: readonly (string | Buffer)[], tracker = new RequestFramingTracker({ maxLineBytes: MAX_LINE })): RequestFramingResult {
  for (const chunk of chunks) {
    const result = tracker.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
    if (result.kind !== 'needMore') return result;
  }
  return { kind: 'needMore' };
}

/** The same bytes whole, one byte per chunk, and cut in two at every point. */
function everySplit(text: string): (readonly string[])[] {
  const splits: (readonly string[])[] = [[text], [...text]];
  for (let at = 1; at < text.length; at++) splits.push([text.slice(0, at), text.slice(at)]);
  return splits;
}

const GET = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: a.test\r\n${extra}\r\n`;
const POST = (body: string): string => `POST /a HTTP/1.1\r\nContent-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`;

describe('request line (RFC 9112 section 3)', () => {
  test.each([['GET /path HTTP/1.1'], ['OPTIONS * HTTP/1.1'], ['GET http://a.test:8080/x?y=1#f HTTP/1.0'], ['CONNECT a.test:443 HTTP/1.1'], ["M-SEARCH! /~'|^`+.*& HTTP/1.1"]])(
    '%s is a request line',
    (line) => {
      expect(requestLineProblem(Buffer.from(line, 'latin1'))).toBeNull();
    },
  );

  test.each([
    ['GET  /path HTTP/1.1', /more than one space after the method/],
    ['GET /path  HTTP/1.1', /more than one space before the HTTP version/],
    ['GET   /path   HTTP/1.1', /more than one space/],
    [' GET /path HTTP/1.1', /does not start with a method/],
    ['GET /path HTTP/1.1 ', /does not end with HTTP\/d\.d/],
    ['GET\t/path HTTP/1.1', /not followed by a single space/],
    ['GET /path\tHTTP/1.1', /other than visible ASCII/],
    ['GET /p\u00e9th HTTP/1.1', /other than visible ASCII/],
    ['GET /path', /no HTTP version/],
    ['GET / HTTP/1.10', /HTTP\/d\.d/],
    ['GET / http/1.1', /HTTP\/d\.d/],
    ['GET / RTSP/1.0', /HTTP\/d\.d/],
    ['GET', /not followed by a single space/],
    ['GET ', /no request target/],
  ])('%j is refused', (line, reason) => {
    expect(requestLineProblem(Buffer.from(line, 'latin1'))).toMatch(reason);
  });
});

describe('request framing tracker: transcripts (bytes in, verdict out), whole and split at every point', () => {
  const valid: [string, string][] = [
    ['one request', GET('/a')],
    ['pipelined requests', GET('/a') + GET('/b') + GET('/c')],
    ['empty lines before a request line', `\r\n\r\n\n\r${GET('/a')}`],
    ['a Content-Length body holding text that looks like a request line', `${POST('GET  /admin HTTP/1.1\r\nHost: x\r\n\r\n')}${GET('/b')}`],
    ['Content-Length: 0 then a request', `POST /a HTTP/1.1\r\nContent-length:  0 \r\n\r\n${GET('/b')}`],
    ['Content-Length with leading zeros', `POST /a HTTP/1.1\r\nContent-Length: 003\r\n\r\nabc${GET('/b')}`],
    ['a chunked body with extensions and trailers', `POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n5;ext=1\r\nGET  \r\nA;q="x y"\r\n/ HTTP/1.1\r\n0\r\nX-Trailer: 1\r\n\r\n${GET('/b')}`],
    ['a chunked body in two Transfer-Encoding fields', `POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${GET('/b')}`],
    ['Expect: 100-continue with its body', `PUT /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody${GET('/b')}`],
    ['HEAD and keep-alive', `HEAD /a HTTP/1.1\r\nConnection: keep-alive\r\n\r\n${GET('/b')}`],
    ['an extra CRLF after a body (old clients)', `POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nok\r\n${GET('/b')}`],
    ['an Upgrade request is read as HTTP until the caller says it switched', `GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n${GET('/b')}`],
  ];

  test.each(valid)('%s: needMore at every split', (_name, text) => {
    for (const chunks of everySplit(text)) expect(track(chunks)).toEqual({ kind: 'needMore' });
  });

  const refused: [string, string, RegExp][] = [
    ['a double space in the first request line', `GET  /a HTTP/1.1\r\nHost: a\r\n\r\n`, /more than one space after the method/],
    ['a double space in a pipelined request line', `${GET('/a')}GET /b  HTTP/1.1\r\nHost: a\r\n\r\n`, /more than one space before the HTTP version/],
    ['a double space after a Content-Length body', `POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET  /b HTTP/1.1\r\n\r\n`, /more than one space/],
    ['a double space after a chunked body', `POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET  /b HTTP/1.1\r\n\r\n`, /more than one space/],
    ['a double space in a CONNECT line', `CONNECT  a.test:443 HTTP/1.1\r\n\r\n`, /more than one space/],
    ['HTTP/0.9', 'GET /a\r\n\r\n', /no HTTP version/],
    ['a bare LF ending the request line', 'GET /a HTTP/1.1\nHost: a\r\n\r\n', /request line does not end with CRLF/],
    ['a bare LF ending a header line', 'GET /a HTTP/1.1\r\nHost: a\n\r\n', /CRLF/],
    ['a bare CR inside a header line', 'GET /a HTTP/1.1\r\nX: a\rb\r\n\r\n', /bare CR/],
    ['obsolete line folding', 'GET /a HTTP/1.1\r\nX: a\r\n b\r\n\r\n', /line folding/],
    ['a header line without a colon', 'GET /a HTTP/1.1\r\nX\r\n\r\n', /field name and colon/],
    ['whitespace before the colon', 'GET /a HTTP/1.1\r\nContent-Length : 3\r\n\r\nabc', /not a token character/],
    ['two Content-Length fields', 'POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc', /more than once/],
    ['a Content-Length list', 'POST /a HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc', /not a number/],
    ['a signed Content-Length', 'POST /a HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc', /not a number/],
    ['a Content-Length past 2^53', 'POST /a HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n', /not a number/],
    ['Transfer-Encoding with Content-Length', 'POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n', /together with Content-Length/],
    ['Transfer-Encoding not ending in chunked', 'POST /a HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n', /does not end with chunked/],
    ['a chunk size with a space', 'POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n', /chunk size is followed/],
    ['a chunk size line with a bare LF', 'POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n', /chunk size is followed/],
    ['a chunk extension ending in a bare LF', 'POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x\nabc\r\n0\r\n\r\n', /extension does not end with CRLF/],
    ['a chunk without a size', 'POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n;x\r\nabc\r\n0\r\n\r\n', /size in hex/],
    ['chunk data longer than its size', 'POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n', /not followed by CRLF/],
    ['a trailer ending in a bare LF', 'POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n', /CRLF/],
    ['a chunk size past 2^53', 'POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n', /too large/],
  ];

  test.each(refused)('%s: invalid at every split', (_name, text, reason) => {
    for (const chunks of everySplit(text)) {
      const result = track(chunks);
      expect(result.kind).toBe('invalid');
      if (result.kind === 'invalid') expect(result.reason).toMatch(reason);
    }
  });

  test('the verdict is sticky: bytes after an invalid request line are not looked at', () => {
    const tracker = new RequestFramingTracker({ maxLineBytes: MAX_LINE });
    const first = tracker.push(Buffer.from('GET  / HTTP/1.1\r\n'));
    expect(first.kind).toBe('invalid');
    expect(tracker.push(Buffer.from(GET('/fine')))).toEqual(first);
  });

  test('CONNECT: the HTTP part ends after its head, wherever the chunk boundary falls', () => {
    const head = 'CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nContent-Length: 5\r\n\r\n';
    const tls = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x20, 0x20]);
    const tracker = new RequestFramingTracker({ maxLineBytes: MAX_LINE });
    expect(tracker.push(Buffer.concat([Buffer.from(head), tls]))).toEqual({ kind: 'parsed', value: { protocol: 'connect' }, consumed: head.length });
    expect(tracker.switched).toBe(true);
    // Whatever follows is another protocol: not looked at.
    expect(tracker.push(Buffer.from('GET  / HTTP/1.1\r\n\r\n'))).toEqual({ kind: 'needMore' });
    for (let at = 1; at < head.length; at++) {
      const split = new RequestFramingTracker({ maxLineBytes: MAX_LINE });
      expect(split.push(Buffer.from(head.slice(0, at)))).toEqual({ kind: 'needMore' });
      expect(split.push(Buffer.concat([Buffer.from(head.slice(at)), tls]))).toEqual({ kind: 'parsed', value: { protocol: 'connect' }, consumed: head.length - at });
    }
  });

  test('a line arriving in pieces longer than maxLineBytes is refused as too large; a whole one too', () => {
    const long = `GET /${'a'.repeat(MAX_LINE)} HTTP/1.1\r\n\r\n`;
    const pieces = track([long.slice(0, 600), long.slice(600, 1200)]);
    expect(pieces).toMatchObject({ kind: 'invalid', tooLarge: true });
    expect(track([long])).toMatchObject({ kind: 'invalid', tooLarge: true });
    expect(track([`GET /${'a'.repeat(MAX_LINE - 20)} HTTP/1.1\r\n\r\n`])).toEqual({ kind: 'needMore' });
  });

  test('counts the request heads it has checked', () => {
    const tracker = new RequestFramingTracker({ maxLineBytes: MAX_LINE });
    tracker.push(Buffer.from(`${GET('/a')}POST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nok${GET('/c').slice(0, 10)}`));
    expect(tracker.requests).toBe(2);
  });

  test('a Content-Length body costs nothing per byte: a large body in large chunks is skipped, not scanned', () => {
    const tracker = new RequestFramingTracker({ maxLineBytes: MAX_LINE });
    const size = 64 * 1024 * 1024;
    expect(tracker.push(Buffer.from(`PUT /big HTTP/1.1\r\nContent-Length: ${size}\r\n\r\n`))).toEqual({ kind: 'needMore' });
    // Bytes that would be refused if they were read as a request line.
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    for (let sent = 0; sent < size; sent += chunk.length) expect(tracker.push(chunk)).toEqual({ kind: 'needMore' });
    expect(track([GET('/after')], tracker)).toEqual({ kind: 'needMore' });
    expect(tracker.requests).toBe(2);
  });
});
