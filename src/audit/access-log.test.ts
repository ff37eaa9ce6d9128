import { accessLogLine } from './access-log';
import type { ConnectionRecord, RequestRecord } from './record-fields';
import { compileFilter } from './record-filter';

const request: RequestRecord = {
  type: 'request',
  time: '2026-12-01T10:00:00.000Z',
  request_id: 'Xk3v9QmA1bZc-2',
  flow_id: 'Xk3v9QmA1bZc',
  frontend: 'explicit-connect',
  client: '192.0.2.10',
  client_port: 50123,
  user: 'alice',
  scheme: 'https',
  host: 'files.storage.example',
  port: 443,
  sni: 'files.storage.example',
  authority: 'files.storage.example',
  method: 'GET',
  path: '/docs/a b?x=1',
  status: 200,
  bytes_from_client: 120,
  bytes_to_client: 5120,
  duration_ms: 42.5,
  action: 'inspect',
  rule: 'storage',
  decision_code: 'rule',
  reason: 'inspected',
  policy_version: 'abc',
  via: null,
  error: null,
  cache: 'miss',
  upstream_cert_sha256: 'AA',
  client_tls: { version: 'TLSv1.3', cipher: 'x' },
  upstream_tls: { version: 'TLSv1.3', cipher: 'y' },
  request_headers: {},
  response_headers: { 'content-type': 'text/html; charset=utf-8' },
  http_version: '2.0',
  http_rule: null,
  flagged_by: ['trial'],
  dlp: null,
};

const tunnel: ConnectionRecord = {
  type: 'connection',
  time: '2026-12-01T10:00:00.000Z',
  flow_id: 'Qw8t5RnB2cXd',
  frontend: 'explicit-connect',
  client: '192.0.2.11',
  client_port: 50200,
  user: null,
  target: 'pastebin.com:443',
  sni: null,
  alpn: null,
  first_bytes: null,
  action: 'deny',
  rule: 'no-paste',
  decision_code: 'rule',
  reason: 'paste sites',
  policy_version: 'abc',
  via: null,
  upstream_address: null,
  bytes_from_client: 0,
  bytes_to_client: 250,
  duration_ms: 1.2,
  close: 'refused',
  error: null,
  requests: 0,
};

describe('access-log lines (Squid native format, then tollgate fields)', () => {
  test('a request: end time, duration, client, code/status, bytes, method, URL, user, hierarchy, type, action, rule, id', () => {
    expect(accessLogLine(request)).toBe(
      '1796119200.043     43 192.0.2.10 TCP_MISS/200 5120 GET https://files.storage.example/docs/a%20b?x=1 alice HIER_DIRECT/files.storage.example text/html inspect storage Xk3v9QmA1bZc-2',
    );
  });

  test('an HTTP-rule denial, a cache hit, an aborted exchange, a plain absolute-form request', () => {
    expect(accessLogLine({ ...request, action: 'deny', status: 403, http_rule: 'no-admin', decision_code: 'http_rule' })).toMatch(/ TCP_DENIED\/403 .* HIER_NONE\/- .* deny no-admin Xk3v9QmA1bZc-2$/);
    expect(accessLogLine({ ...request, cache: 'hit' })).toMatch(/ TCP_HIT\/200 .* HIER_NONE\/- /);
    expect(accessLogLine({ ...request, status: 0, response_headers: null })).toMatch(/ TCP_MISS_ABORTED\/000 .* - inspect /);
    expect(accessLogLine({ ...request, scheme: 'http', path: 'http://plain.example:8080/x', port: 8080, upstream_tls: null, user: null })).toMatch(
      / GET http:\/\/plain\.example:8080\/x - HIER_DIRECT\//,
    );
  });

  test('a denied CONNECT, a splice, a refused bad request; plain-HTTP connections and pinning records have no line', () => {
    expect(accessLogLine(tunnel)).toBe('1796119200.001      1 192.0.2.11 TCP_DENIED/403 250 CONNECT pastebin.com:443 - HIER_NONE/- - deny no-paste Qw8t5RnB2cXd');
    expect(accessLogLine({ ...tunnel, action: 'splice', close: 'client-closed', upstream_address: '203.0.113.7' })).toMatch(
      / TCP_TUNNEL\/200 250 CONNECT pastebin\.com:443 - HIER_DIRECT\/203\.0\.113\.7 - splice /,
    );
    expect(accessLogLine({ ...tunnel, action: 'none', rule: null, error: 'TG_ERR_BAD_REQUEST: no port' })).toMatch(/ NONE_NONE\/400 .* none - Qw8t5RnB2cXd$/);
    expect(accessLogLine({ ...tunnel, frontend: 'explicit-http', requests: 3, action: 'inspect' })).toBeNull();
    expect(accessLogLine({ type: 'pinning', time: '', name: 'x', action: 'auto-splice', distinct_clients: 3, until: '', reason: '' })).toBeNull();
  });

  test('through a parent proxy the hierarchy is FIRSTUP_PARENT; a stale-while-revalidate answer is a hit', () => {
    expect(accessLogLine({ ...request, via: 'corp-squid' })).toContain(' FIRSTUP_PARENT/files.storage.example ');
    expect(accessLogLine({ ...request, via: 'direct' })).toContain(' HIER_DIRECT/files.storage.example ');
    expect(accessLogLine({ ...tunnel, action: 'splice', close: 'client-closed', upstream_address: '203.0.113.7', via: 'a,b' })).toContain(' FIRSTUP_PARENT/203.0.113.7 ');
    expect(accessLogLine({ ...request, cache: 'stale-while-revalidate' })).toMatch(/ TCP_HIT\/200 .* HIER_NONE\/- /);
  });

  test('every line has the same number of space-separated fields', () => {
    for (const line of [accessLogLine(request), accessLogLine(tunnel), accessLogLine({ ...request, user: 'a b', rule: null, reason: '' })]) {
      expect(line!.trim().split(/ +/)).toHaveLength(13);
    }
  });
});

describe('record filters', () => {
  const records = [request as unknown as Record<string, unknown>, tunnel as unknown as Record<string, unknown>];
  const keep = (expr: string) => records.filter(compileFilter(expr)).map((r) => r.type);

  test.each([
    ['', ['request', 'connection']],
    ['action=deny', ['connection']],
    ['action=deny,inspect', ['request', 'connection']],
    ['ACTION=deny', 'error'],
    ['user=alice', ['request']],
    ['user!=alice', ['connection']],
    ['status>=400', []],
    ['status<300', ['request']],
    ['status=2xx', ['request']],
    ['name=*.storage.example', ['request']],
    ['name=pastebin.com', ['connection']],
    ['name=PASTEBIN.*', ['connection']],
    ['flagged_by=trial', ['request']],
    ['type=request status=200 rule=storage', ['request']],
    ['rule=storage rule=no-paste', []],
    ['colour=red', 'error'],
    ['status>=abc', 'error'],
    ['action', 'error'],
  ])('%s', (expr, want) => {
    if (want === 'error') expect(() => compileFilter(expr)).toThrow(/expected|unknown field|compares numbers/);
    else expect(keep(expr)).toEqual(want);
  });
});
