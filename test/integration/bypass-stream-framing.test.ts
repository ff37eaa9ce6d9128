import { startLabGateway, startLabOrigin, type LabOrigin } from './support/bypass-lab';
import type { TestGateway } from './support/gateway';
import { run } from './support/run';
import { statuses, tlsRawExchange } from './support/tls-raw';

/**
 * Second review, item 1: after terminating an inspected tunnel, the gateway tells HTTP from
 * other protocols by the client's first decrypted bytes. A request an origin reads as HTTP must
 * never be taken for "not HTTP" and relayed past the HTTP rules: not when it starts with empty
 * lines (servers skip them, RFC 9112 2.2), and not when its first byte arrives alone and the
 * rest after limits.server_first_wait. openssl s_client and python3's ssl offer no ALPN, so
 * only the first bytes decide.
 */
describe('bypass: a request framed or timed so it looks like something other than HTTP', () => {
  let lab: LabOrigin;
  let gw: TestGateway;

  beforeAll(async () => {
    lab = await startLabOrigin();
    gw = await startLabGateway(lab);
  });

  afterAll(async () => {
    await gw?.stop();
    await lab?.close();
  });

  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100));

  test.each([
    ['a CRLF', '\r\n'],
    ['two bare LFs', '\n\n'],
  ])('%s before the request line: the HTTP rules still apply (403), the origin never sees the path', async (_name, prefix) => {
    const host = `storage.test:${lab.httpsPort}`;
    const path = `/admin/empty-lines-${prefix.length}`;
    const { text, verified } = await tlsRawExchange({
      proxyPort: gw.explicitPort,
      connect: host,
      sni: 'storage.test',
      caFile: gw.caFile,
      payload: `${prefix}GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
    });
    await settle();
    expect(verified).toBe(true);
    expect(statuses(text)).toEqual([403]);
    expect(text).toMatch(/the admin area is off limits/);
    expect(lab.requestsFor(path)).toEqual([]);
  });

  test.each([
    ['seventeen line ends before it', `${'\n'.repeat(17)}GET /admin/many-line-ends HTTP/1.1`, 403, '/admin/many-line-ends'],
    ['a lowercase method (which some servers take)', 'get /admin/lowercase HTTP/1.1', 400, '/admin/lowercase'],
  ])('a request line with %s goes to the HTTP path and is answered there, never relayed', async (_name, line, status, path) => {
    const host = `storage.test:${lab.httpsPort}`;
    const { text } = await tlsRawExchange({ proxyPort: gw.explicitPort, connect: host, sni: 'storage.test', caFile: gw.caFile, payload: `${line}\r\nHost: ${host}\r\nConnection: close\r\n\r\n` });
    await settle();
    expect(statuses(text)).toEqual([status]);
    expect(lab.requestsFor(path)).toEqual([]);
  });

  test('under a rule without HTTP rules, a request after an empty line is served as HTTP (Via, a request record), not relayed as a stream', async () => {
    const host = `victim.test:${lab.httpsPort}`;
    const { text } = await tlsRawExchange({
      proxyPort: gw.explicitPort,
      connect: host,
      sni: 'victim.test',
      caFile: gw.caFile,
      payload: `\r\nGET /after-empty-line HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
    });
    await settle();
    expect(statuses(text)).toEqual([200]);
    const seen = lab.requestsFor('/after-empty-line');
    expect(seen).toHaveLength(1);
    expect(String(seen[0]!.headers.via)).toMatch(/tollgate/);
    const records = await gw.audit();
    expect(records.some((r) => r.type === 'request' && (r as { path?: string }).path === '/after-empty-line')).toBe(true);
  });

  test('one byte, a pause longer than server_first_wait, then the rest: still a request, still denied', async () => {
    const host = `storage.test:${lab.httpsPort}`;
    const script = [
      'import socket, ssl, sys, time',
      `proxy = socket.create_connection(("127.0.0.1", ${gw.explicitPort}), timeout=10)`,
      `proxy.sendall(b"CONNECT ${host} HTTP/1.1\\r\\nHost: ${host}\\r\\n\\r\\n")`,
      'reply = b""',
      'while b"\\r\\n\\r\\n" not in reply:',
      '    chunk = proxy.recv(4096)',
      '    if not chunk: sys.exit("proxy closed")',
      '    reply += chunk',
      `context = ssl.create_default_context(cafile="${gw.caFile}")`,
      'tls = context.wrap_socket(proxy, server_hostname="storage.test")',
      'tls.sendall(b"G")',
      'time.sleep(0.7)',
      `tls.sendall(b"ET /admin/slow HTTP/1.1\\r\\nHost: ${host}\\r\\nConnection: close\\r\\n\\r\\n")`,
      'out = b""',
      'while True:',
      '    chunk = tls.recv(4096)',
      '    if not chunk: break',
      '    out += chunk',
      'sys.stdout.write(out.decode("latin1"))',
    ].join('\n');
    const result = await run('python3', ['-c', script], { timeoutMs: 15_000 });
    await settle();
    expect(result.stderr).toBe('');
    expect(statuses(result.stdout.toString('latin1'))).toEqual([403]);
    expect(lab.requestsFor('/admin/slow')).toEqual([]);
  });
});
