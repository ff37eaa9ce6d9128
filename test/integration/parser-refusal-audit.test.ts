import net from 'node:net';
import type { ConnectionRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';

/**
 * A request Node's HTTP parser (or the request-line check in front of it) refuses on the
 * explicit and transparent HTTP listeners is answered 400, 431 or 408 and also leaves an audit
 * record: one `connection` record with `close: refused` (`timeout` for a header timeout) and the
 * catalogue code of the status. Before, these refusals (smuggling attempts among them) were only
 * in the operational log.
 */

interface Exchanged {
  readonly port: number;
  readonly reply: string;
}

/** Sends `parts` (the next one once `waitFor` of the previous reply arrived), collects until close; bounded. */
function exchange(port: number, parts: readonly string[], timeoutMs = 4000): Promise<Exchanged> {
  return new Promise((resolve) => {
    let localPort = 0;
    let reply = '';
    const socket = net.connect(port, '127.0.0.1', () => {
      localPort = socket.localPort ?? 0;
      socket.write(parts[0] ?? '');
    });
    let next = 1;
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      // A later part goes once the previous request's full response is in (keep-alive).
      if (next < parts.length && /\r\n\r\n[\s\S]*\n$/.test(reply)) socket.write(parts[next++] ?? '');
    });
    socket.on('error', () => undefined);
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ port: localPort, reply });
    });
  });
}

async function recordsOf(gw: TestGateway, port: number): Promise<ConnectionRecord[]> {
  const find = async (): Promise<ConnectionRecord[]> => (await gw.audit()).filter((r): r is ConnectionRecord => r.type === 'connection' && r.client_port === port);
  return eventually(find, (records) => records.length > 0, 3000);
}

describe('requests refused by the HTTP parser are in the audit trail', () => {
  let origin: Origin;
  let gw: TestGateway;
  let ports: { explicit: number; transparent: number };

  beforeAll(async () => {
    origin = await startHttpOrigin('parser-refusals');
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  transparent_http: 127.0.0.1:0',
      allowedPorts: { tunnel: [443], http: [origin.port] },
      policies: { 'a.yaml': 'rules:\n  - match: origin.test\n    action: splice\n' },
      extraConfig: ['limits:', '  header_timeout: 500ms', 'http:', '  max_header_size: 8KiB', `transparent:`, `  http_origin_port: ${origin.port}`].join('\n'),
    });
    ports = { explicit: gw.explicitPort, transparent: gw.gateway.address('transparentHttp')!.port };
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
  });

  const target = (listener: 'explicit' | 'transparent'): string => (listener === 'explicit' ? `http://origin.test:${origin.port}/hello` : '/hello');
  const host = (): string => `origin.test:${origin.port}`;

  const cases: [string, number, string, (listener: 'explicit' | 'transparent') => string][] = [
    ['a request line with two spaces', 400, 'TG_ERR_BAD_REQUEST', (l) => `GET  ${target(l)} HTTP/1.1\r\nHost: ${host()}\r\n\r\n`],
    ['garbage bytes', 400, 'TG_ERR_BAD_REQUEST', () => '\u0000\u0001\u0002\u0003 hello\r\n\r\n'],
    ['headers over http.max_header_size', 431, 'TG_ERR_HEADERS_TOO_LARGE', (l) => `GET ${target(l)} HTTP/1.1\r\nHost: ${host()}\r\nX-Big: ${'a'.repeat(10_000)}\r\n\r\n`],
    [
      'Content-Length with Transfer-Encoding (smuggling)',
      400,
      'TG_ERR_BAD_REQUEST',
      (l) => `POST ${target(l)} HTTP/1.1\r\nHost: ${host()}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    ],
  ];

  for (const listener of ['explicit', 'transparent'] as const) {
    const frontend = listener === 'explicit' ? 'explicit-http' : 'transparent-http';

    test.each(cases)(`${listener}: %s gets %i and one connection record with close: refused and %s`, async (_name, status, code, payload) => {
      const { port, reply } = await exchange(ports[listener], [payload(listener)]);
      expect(reply).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      const records = await recordsOf(gw, port);
      expect(records).toEqual([expect.objectContaining({ frontend, action: 'none', close: 'refused', requests: 0, error: expect.stringMatching(new RegExp(`^${code}: `)) })]);
      // The refusal page names the flow, so a user's report leads to the record.
      expect(reply).toContain(records[0]!.flow_id);
      expect(records[0]!.bytes_to_client).toBeGreaterThan(0);
    });

    test(`${listener}: headers not complete within limits.header_timeout get 408 and a record with close: timeout`, async () => {
      const { port, reply } = await exchange(ports[listener], [`GET ${target(listener)} HTTP/1.1\r\nHost: ${host()}\r\nX-Slow: a`]);
      expect(reply).toMatch(/^HTTP\/1\.1 408 /);
      expect(await recordsOf(gw, port)).toEqual([expect.objectContaining({ frontend, close: 'timeout', error: expect.stringMatching(/^TG_ERR_CLIENT_TIMEOUT: /) })]);
    });

    test(`${listener}: a refusal after a served request goes on that connection's one record`, async () => {
      const good = `GET ${target(listener)} HTTP/1.1\r\nHost: ${host()}\r\n\r\n`;
      const smuggled = `POST ${target(listener)} HTTP/1.1\r\nHost: ${host()}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`;
      const { port, reply } = await exchange(ports[listener], [good, smuggled]);
      expect(reply).toMatch(/^HTTP\/1\.1 200 [\s\S]*HTTP\/1\.1 400 /);
      expect(await recordsOf(gw, port)).toEqual([expect.objectContaining({ frontend, close: 'refused', requests: 1, error: expect.stringMatching(/^TG_ERR_BAD_REQUEST: /) })]);
    });
  }

  test('transparent: a CONNECT (not served there) gets 400 and a record', async () => {
    const { port, reply } = await exchange(ports.transparent, [`CONNECT ${host()} HTTP/1.1\r\nHost: ${host()}\r\n\r\n`]);
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(await recordsOf(gw, port)).toEqual([
      expect.objectContaining({ frontend: 'transparent-http', close: 'refused', error: expect.stringMatching(/^TG_ERR_BAD_REQUEST: CONNECT is not served/) }),
    ]);
  });
});
