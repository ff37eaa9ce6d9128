import { compilePolicy } from '../load-policy';
import { ConfigError } from '../../sources/config-error';
import { compileGlob } from './glob';
import { applyHeaderEdits, evaluateRequest, evaluateResponse, requestFacts, ruleTarget, type RequestFacts } from './evaluate';
import type { HttpRule } from './rule-types';

/** The facts the forwarding path builds: the path canonical, the query raw. */
function factsOf(method: string, url: string, rawHeaders: readonly string[], contentLength: number | null): RequestFacts {
  const target = ruleTarget(url, { allowEncodedSlashes: false });
  if (!target.ok) throw new Error(target.reason);
  return requestFacts(method, target.path, target.query, rawHeaders, contentLength);
}

function rulesOf(http: string): readonly HttpRule[] {
  const policy = compilePolicy([{ name: 'p.yaml', displayPath: 'policies/p.yaml', text: `rules:\n  - name: site\n    match: site.example\n    action: inspect\n    http:\n${http}` }], {
    defaultAction: 'deny',
    allowedPorts: { tunnel: [443], http: [80] },
  });
  return policy.rules[0]!.http;
}

describe('globs', () => {
  test.each([
    ['/api/*', '/api/users', true],
    ['/api/*', '/api/users/1', false],
    ['/api/**', '/api/users/1', true],
    ['/api/**', '/api/', true],
    ['/file.?ip', '/file.zip', true],
    ['/a*b*c', '/axxbyyc', true],
    ['/a*b*c', '/axxbyy', false],
    ['*.exe', 'setup.exe', true],
    ['/literal', '/literal', true],
    ['/literal', '/literal/', false],
  ])('%s ~ %s = %s', (glob, text, expected) => {
    expect(compileGlob(glob)(text)).toBe(expected);
  });

  test('matching is linear: a pathological glob on a long path returns at once', () => {
    const match = compileGlob('/**a**a**a**a**a**a**a**a**b');
    const text = `/${'a'.repeat(60_000)}`;
    expect(match(text)).toBe(false);
  });
});

describe('HTTP rule evaluation', () => {
  const rules = rulesOf(`      - name: allow-health
        request: { method: [GET], path: /health }
        action: allow
      - name: no-uploads
        request: { method: [POST, PUT], path: "/upload/**" }
        action: deny
        reason: uploads are blocked
      - name: watch-debug
        request: { query: { debug: true } }
        action: log
      - name: strip-client-data
        action: strip_header
        strip_headers: { request: [X-Client-Data], response: [Server] }
      - name: tag
        request: { headers: { user-agent: "curl/*" } }
        action: set_header
        set_headers: { request: { X-Corp: acme } }
      - name: big-bodies
        request: { body_larger_than: 1KiB }
        action: deny
      - name: no-zip
        response: { content_type: ["application/zip"] }
        action: deny
      - name: errors
        response: { status: ["500-599"] }
        action: log
      - name: huge
        response: { larger_than: 10MiB }
        action: deny
`);

  test('allow ends evaluation', () => {
    const result = evaluateRequest(rules, factsOf('GET', '/health?debug=1', [], null));
    expect(result.verdict).toMatchObject({ action: 'allow', rule: { id: 'allow-health' } });
    expect(result.logged).toEqual([]);
  });

  test('a query parameter is found under the spellings frameworks read as the same one', () => {
    for (const url of ['/p?debug=1', '/p?DEBUG=1', '/p?debug[]=1', '/p?debug[on]=1', '/p?a=1;debug=1', '/p?%64ebug=1', '/p?x&Debug', '/p?+debug=1', '/p?%20debug=1', '/p?debug%00x=1']) {
      expect([url, evaluateRequest(rules, factsOf('GET', url, [], null)).logged]).toEqual([url, ['watch-debug']]);
    }
    for (const url of ['/p?debugging=1', '/p?xdebug=1', '/p?a=debug', '/p?[debug]=1']) {
      expect([url, evaluateRequest(rules, factsOf('GET', url, [], null)).logged]).toEqual([url, []]);
    }
  });

  test('deny by method and path glob, with the reason', () => {
    const result = evaluateRequest(rules, factsOf('put', '/upload/a/b', [], 10));
    expect(result.verdict?.action).toBe('deny');
    expect(result.verdict?.rule.reason).toBe('uploads are blocked');
  });

  test('log, strip and set accumulate; body size is decided from Content-Length or deferred', () => {
    const facts = factsOf('POST', '/form?debug', ['User-Agent', 'curl/8.0', 'X-Client-Data', 'x'], null);
    const result = evaluateRequest(rules, facts);
    expect(result.verdict).toBeNull();
    expect(result.logged).toEqual(['watch-debug']);
    expect(result.pendingBody.map((p) => [p.rule.id, p.limit])).toEqual([['big-bodies', 1024]]);
    expect(applyHeaderEdits(facts.rawHeaders, result.requestEdits)).toEqual(['User-Agent', 'curl/8.0', 'X-Corp', 'acme']);
    expect(result.responseRules.map((r) => r.id)).toEqual(['no-zip', 'errors', 'huge']);
    expect(evaluateRequest(rules, factsOf('POST', '/form', [], 2048)).verdict?.rule.id).toBe('big-bodies');
    expect(evaluateRequest(rules, factsOf('POST', '/form', [], 512)).verdict).toBeNull();
  });

  test('response conditions: content type, status, size', () => {
    const deferred = evaluateRequest(rules, factsOf('GET', '/x', [], null)).responseRules;
    expect(evaluateResponse(deferred, { status: 200, contentType: 'application/zip', contentLength: 5 }).verdict?.rule.id).toBe('no-zip');
    const errors = evaluateResponse(deferred, { status: 503, contentType: 'text/html', contentLength: 5 });
    expect(errors.verdict).toBeNull();
    expect(errors.logged).toEqual(['errors']);
    expect(evaluateResponse(deferred, { status: 200, contentType: 'text/plain', contentLength: 20 * 1024 * 1024 }).verdict?.rule.id).toBe('huge');
    expect(evaluateResponse(deferred, { status: 200, contentType: 'text/plain', contentLength: null }).pendingBody.map((p) => p.rule.id)).toEqual(['huge']);
  });

  test('bad HTTP rules are refused with their location', () => {
    const attempt = (http: string): string => {
      try {
        rulesOf(http);
      } catch (err) {
        if (err instanceof ConfigError) return err.message;
        throw err;
      }
      return '';
    };
    expect(attempt('      - action: set_header\n        set_headers: { request: { Host: evil } }\n')).toMatch(
      /policies\/p\.yaml:7: rules\[0\]\.http\[0\]\.set_headers\.request: "Host" is managed by the gateway/,
    );
    expect(attempt('      - action: strip_header\n')).toMatch(/strip_header needs strip_headers/);
    expect(attempt('      - action: block\n')).toMatch(/http\[0\]\.action: expected one of: allow, deny, log, strip_header, set_header/);
    expect(attempt('      - request: { path: "api/*" }\n        action: deny\n')).toMatch(/a path glob starts with "\/"/);
    expect(attempt('      - response: { status: ["5xx"] }\n        action: deny\n')).toMatch(/expected a status code/);
  });
});

describe('path conditions', () => {
  const rules = rulesOf(`      - name: any-case-admin
        request: { path: "/Admin/**", path_ignore_case: true }
        action: deny
      - name: exact-case-private
        request: { path: "/private/**" }
        action: deny
`);

  test.each([
    ['/admin', 'any-case-admin'],
    ['/ADMIN/x', 'any-case-admin'],
    ['/Admin/x/y', 'any-case-admin'],
    ['/private', 'exact-case-private'],
    ['/private/a', 'exact-case-private'],
    ['/Private/a', null],
    ['/administrator', null],
  ])('%s is decided by %s', (path, id) => {
    expect(evaluateRequest(rules, factsOf('GET', path, [], null)).verdict?.rule.id ?? null).toBe(id);
  });
});
