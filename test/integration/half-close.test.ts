import type { ConnectionRecord, RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { run } from './support/run';

/**
 * A client that sends its request and then half-closes its side of the connection (python3:
 * shutdown(SHUT_WR), as `nc -N` and many scripted clients do) still gets the whole response,
 * on the explicit proxy and the transparent HTTP listener alike, and the records agree.
 */
describe('a plain HTTP client that half-closes after its request', () => {
  let gw: TestGateway;
  let origin: Origin;

  beforeAll(async () => {
    origin = await startHttpOrigin('half-close');
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  transparent_http: 127.0.0.1:0',
      allowedPorts: { tunnel: [], http: [origin.port] },
      policies: { 'site.yaml': 'rules:\n  - match: origin.test\n    action: splice\n' },
      extraConfig: `transparent:\n  http_origin_port: ${origin.port}`,
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await origin?.close();
  });

  async function halfClose(port: number, request: string): Promise<string> {
    const script = [
      'import socket, sys',
      `s = socket.create_connection(("127.0.0.1", ${port}), timeout=10)`,
      `s.sendall(${JSON.stringify(request)}.encode())`,
      's.shutdown(socket.SHUT_WR)',
      'out = b""',
      'while True:',
      '    chunk = s.recv(65536)',
      '    if not chunk: break',
      '    out += chunk',
      'sys.stdout.write(out.decode("latin1"))',
    ].join('\n');
    const result = await run('python3', ['-c', script], { timeoutMs: 15_000 });
    expect(result.stderr).toBe('');
    return result.stdout.toString('latin1');
  }

  test.each([
    ['explicit proxy', 'explicit', (port: number) => `GET http://origin.test:${port}/hello?half=explicit HTTP/1.1\r\nHost: origin.test:${port}\r\n\r\n`, '/hello?half=explicit'],
    ['transparent HTTP', 'transparentHttp', (port: number) => `GET /hello?half=transparent HTTP/1.1\r\nHost: origin.test:${port}\r\n\r\n`, '/hello?half=transparent'],
  ] as const)('%s: the whole response arrives, then the connection ends; the records agree', async (_name, listener, request, urlPath) => {
    const port = gw.gateway.address(listener)!.port;
    const reply = await halfClose(port, request(origin.port));
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(reply.endsWith('hello from half-close\n')).toBe(true);
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path === urlPath));
    const record = records.find((x): x is RequestRecord => x.type === 'request' && x.path === urlPath)!;
    expect(record).toMatchObject({ status: 200, error: null });
    const connection = await eventually(gw.audit, (r) => r.some((x) => x.type === 'connection' && x.flow_id === record.flow_id));
    const flow = connection.find((x): x is ConnectionRecord => x.type === 'connection' && x.flow_id === record.flow_id)!;
    expect(flow.bytes_to_client).toBe(Buffer.byteLength(reply));
  });
});
