import { documentedFields, recordFields } from '../../test/integration/support/audit-doc';
import { connectionRecord, pinningRecord, requestRecord, withReverseRoute } from './records';

/**
 * docs/audit.md describes every field of every record type, and only those: a field added to a
 * record without a line in the document fails here, as the error catalogue's test does for codes.
 * The records are built with every optional part present (TLS summaries, DLP findings, ALPN).
 */
const decision = { action: 'inspect', code: 'rule', rule: { id: 'web' }, reason: 'inspected', policyVersion: 'abc123' };
const client = { flowId: 'Xk3v9QmA1bZc', frontend: 'explicit-connect', clientAddress: '192.0.2.10', clientPort: 50123, user: 'alice' };

const connection = connectionRecord({
  ...client,
  startTime: new Date(0),
  target: 'example.com:443',
  sni: 'example.com',
  alpn: ['h2', 'http/1.1'],
  firstBytes: 'tls',
  decision,
  upstreamAddress: '203.0.113.7',
  bytesFromClient: 1,
  bytesToClient: 2,
  durationMs: 3,
  close: 'client-closed',
  error: { code: 'TG_ERR_X', message: 'x' },
  requests: 1,
  stream: { protocol: 'imap', bytesFromClient: 4, bytesToClient: 5, dlp: [{ detector: 'aws_access_key_id', offset: 6, action: 'deny', direction: 'client-to-origin' }] },
});

// A reverse-proxy request, so that its route and backend are present too.
const request = withReverseRoute(
  requestRecord({
    ...client,
    requestId: 'Xk3v9QmA1bZc-1',
    scheme: 'https',
    host: 'example.com',
    port: 443,
    sni: 'example.com',
    authority: 'example.com',
    method: 'POST',
    path: '/upload',
    httpVersion: '2.0',
    decision,
    status: 200,
    bytesFromClient: 10,
    bytesToClient: 20,
    durationMs: 4.5,
    error: null,
    cache: 'miss',
    upstreamCertSha256: 'AA:BB',
    clientTls: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' },
    upstreamTls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    requestHeaders: { 'user-agent': 'curl/8', 'x-custom': ['a', 'b'] },
    responseHeaders: { 'content-type': 'text/plain' },
    httpRule: 'uploads',
    flaggedBy: ['trial'],
    dlp: [{ detector: 'payment_card', offset: 5, action: 'log' }],
  }),
  { route: 'app.example/api/', backend: 'https://app.internal:8443' },
);

const pinning = pinningRecord('pinned.example', 3, new Date(0));

describe('docs/audit.md describes every audit field, and only those', () => {
  const documented = documentedFields();

  test.each([
    ['connection', connection],
    ['request', request],
    ['pinning', pinning],
  ] as const)('%s records', (type, record) => {
    const fields = recordFields(record);
    expect(fields.filter((f) => !documented[type].has(f))).toEqual([]);
    expect([...documented[type]].filter((f) => !fields.includes(f))).toEqual([]);
  });

  test('the check sees an undocumented field', () => {
    expect(recordFields({ ...connection, surprise: 1 }).filter((f) => !documented.connection.has(f))).toEqual(['surprise']);
    expect(recordFields({ ...request, client_tls: { version: 'x', cipher: 'y', extra: 1 } }).filter((f) => !documented.request.has(f))).toEqual(['client_tls.extra']);
  });

  test("a request record's time is when the request began, duration_ms before it was written", () => {
    const before = Date.now();
    const record = requestRecord({ ...requestFacts(), durationMs: 60_000 });
    expect(Date.parse(record.time)).toBeGreaterThanOrEqual(before - 60_000 - 5);
    expect(Date.parse(record.time)).toBeLessThanOrEqual(Date.now() - 60_000 + 5);
  });
});

function requestFacts(): Parameters<typeof requestRecord>[0] {
  return {
    ...client,
    requestId: 'r',
    scheme: 'http',
    host: 'h',
    port: 80,
    sni: null,
    authority: null,
    method: 'GET',
    path: '/',
    httpVersion: '1.1',
    decision,
    status: 200,
    bytesFromClient: 0,
    bytesToClient: 0,
    durationMs: 0,
    error: null,
    cache: null,
    upstreamCertSha256: null,
    clientTls: null,
    upstreamTls: null,
    requestHeaders: {},
    responseHeaders: null,
    httpRule: null,
    flaggedBy: [],
    dlp: null,
  };
}
