import type { IncomingMessage } from 'node:http';
import type { InboundRequest } from './inbound';
import { checkHostAgreement, checkRequestFraming, hasBody, presentedAuthorities, replaceForwardingFields, splitAbsoluteForm } from './request-checks';

/** A request as these checks read it: its raw field list and Node's lower-cased view of it. */
function request(rawHeaders: string[]): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) headers[rawHeaders[i]!.toLowerCase()] ??= rawHeaders[i + 1]!;
  return { rawHeaders, headers } as unknown as IncomingMessage;
}

describe('splitAbsoluteForm', () => {
  test.each([
    ['http://example.test/a?b=1', { scheme: 'http', authority: 'example.test', path: '/a?b=1' }],
    ['HTTP://Example.test:8080', { scheme: 'http', authority: 'Example.test:8080', path: '/' }],
    ['http://example.test?q', { scheme: 'http', authority: 'example.test', path: '/?q' }],
    ['http://[::1]:81/x#frag', { scheme: 'http', authority: '[::1]:81', path: '/x' }],
    ['ftp://files.test/x', { scheme: 'ftp', authority: 'files.test', path: '/x' }],
  ])('%s', (url, expected) => {
    expect(splitAbsoluteForm(url)).toEqual(expected);
  });

  test.each(['/origin-form', 'example.test:443', '*', '://no-scheme/'])('%s is not absolute-form', (url) => {
    expect(splitAbsoluteForm(url)).toBeNull();
  });
});

describe('checkRequestFraming', () => {
  test('one Host and a lone chunked pass', () => {
    expect(checkRequestFraming(request(['Host', 'a.test', 'Transfer-Encoding', ' Chunked ']) as InboundRequest)).toBeNull();
  });

  test.each([
    [['Host', 'a.test', 'host', 'b.test'], /more than one Host/],
    [['Transfer-Encoding', 'gzip, chunked'], /unsupported Transfer-Encoding "gzip, chunked"/],
    [['Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'], /unsupported Transfer-Encoding/],
    [['Transfer-Encoding', 'identity'], /only "chunked" is accepted/],
  ])('%j is refused', (raw, reason) => {
    expect(checkRequestFraming(request(raw) as InboundRequest)).toMatch(reason);
  });
});

describe('checkHostAgreement', () => {
  const target = { host: { kind: 'name' as const, name: 'a.test' }, port: 80 };

  test('no Host, or one naming the target (case, root dot and default port aside), agrees', () => {
    expect(checkHostAgreement(request([]), target, 80)).toBeNull();
    expect(checkHostAgreement(request(['Host', 'A.TEST']), target, 80)).toBeNull();
    expect(checkHostAgreement(request(['Host', 'a.test:80']), target, 80)).toBeNull();
    // A fully qualified name with its root dot is the same name (policy matches it so too).
    expect(checkHostAgreement(request(['Host', 'a.test.']), target, 80)).toBeNull();
  });

  test.each(['b.test', 'a.test:8080', 'a.test@b.test', ''])('Host "%s" does not', (host) => {
    expect(checkHostAgreement(request(['Host', host]), target, 80)).toMatch(/does not match the request target/);
  });
});

describe('presentedAuthorities and hasBody', () => {
  test(':authority comes before Host', () => {
    const req = { headers: { ':authority': 'h2.test', host: 'h1.test' } } as unknown as InboundRequest;
    expect(presentedAuthorities(req)).toEqual(['h2.test', 'h1.test']);
  });

  test('a body is announced by Transfer-Encoding or a non-zero Content-Length', () => {
    expect(hasBody(request(['Transfer-Encoding', 'chunked']))).toBe(true);
    expect(hasBody(request(['Content-Length', '3']))).toBe(true);
    expect(hasBody(request(['Content-Length', '0']))).toBe(false);
    expect(hasBody(request([]))).toBe(false);
  });
});

describe('replaceForwardingFields', () => {
  test("the client's forwarding fields are replaced by what the gateway saw, never appended to", () => {
    const req = request(['Host', 'app.test', 'X-Forwarded-For', '10.9.9.9', 'forwarded', 'for=10.9.9.9', 'X-Forwarded-Host', 'evil.test', 'Accept', '*/*']);
    replaceForwardingFields(req as InboundRequest, { client: '192.0.2.7', proto: 'https', host: 'app.test' });
    expect(req.rawHeaders).toEqual([
      'Host',
      'app.test',
      'Accept',
      '*/*',
      'X-Forwarded-For',
      '192.0.2.7',
      'X-Forwarded-Proto',
      'https',
      'X-Forwarded-Host',
      'app.test',
      'Forwarded',
      'for=192.0.2.7;proto=https;host="app.test"',
    ]);
  });

  test("the client's hop-by-hop fields go first, so its Connection header cannot name the fields added", () => {
    const req = request(['Host', 'app.test', 'Connection', 'X-Forwarded-For, Forwarded, X-Secret', 'X-Secret', 'dropped', 'Accept', '*/*']);
    replaceForwardingFields(req as InboundRequest, { client: '192.0.2.7', proto: 'http', host: 'app.test' });
    expect(req.rawHeaders).toEqual([
      'Host',
      'app.test',
      'Accept',
      '*/*',
      'X-Forwarded-For',
      '192.0.2.7',
      'X-Forwarded-Proto',
      'http',
      'X-Forwarded-Host',
      'app.test',
      'Forwarded',
      'for=192.0.2.7;proto=http;host="app.test"',
    ]);
  });

  test('an IPv6 client is quoted and bracketed in Forwarded; quotes in Host cannot break out', () => {
    const req = request([]);
    replaceForwardingFields(req as InboundRequest, { client: '2001:db8::7', proto: 'http', host: 'a"b\\.test' });
    expect(req.rawHeaders.at(-1)).toBe('for="[2001:db8::7]";proto=http;host="ab.test"');
  });
});
