import type { RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { run } from './support/run';

/**
 * A client that stops reading for a while is the gateway's backpressure on the origin, not an
 * origin gone silent: upstream.idle_timeout must not cut the download and blame the origin.
 * The client is python3 with a raw socket, so it can stop reading mid-body.
 */
const ORIGIN_IDLE_TIMEOUT_MS = 800;
const PAUSE_S = 2.5;
const SIZE = 48 * 1024 * 1024;

describe('a client that pauses reading longer than upstream.idle_timeout', () => {
  let gw: TestGateway;
  let origin: Origin;

  beforeAll(async () => {
    origin = await startHttpOrigin('slow-reader');
    gw = await startTestGateway({
      allowedPorts: { tunnel: [], http: [origin.port] },
      policies: { 'site.yaml': 'rules:\n  - match: origin.test\n    action: splice\n' },
      upstreamSection: ['upstream:', '  hosts:\n    origin.test: 127.0.0.1', '  allow_addresses: [127.0.0.0/8]', `  idle_timeout: ${ORIGIN_IDLE_TIMEOUT_MS}ms`].join('\n'),
      extraConfig: 'limits:\n  client_idle_timeout: 30s',
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await origin?.close();
  });

  test('gets the whole body once it reads again; the record has no error', async () => {
    const path = `/bytes?n=${SIZE}`;
    const script = [
      'import socket, sys, time',
      `s = socket.create_connection(("127.0.0.1", ${gw.explicitPort}), timeout=20)`,
      's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)',
      `s.sendall(b"GET http://origin.test:${origin.port}${path} HTTP/1.1\\r\\nHost: origin.test:${origin.port}\\r\\nConnection: close\\r\\n\\r\\n")`,
      'got = b""',
      'while len(got) < 1024 * 1024:',
      '    chunk = s.recv(65536)',
      '    if not chunk: break',
      '    got += chunk',
      `time.sleep(${PAUSE_S})`,
      'total = len(got)',
      'head_end = got.find(b"\\r\\n\\r\\n") + 4',
      'try:',
      '    while True:',
      '        chunk = s.recv(1 << 20)',
      '        if not chunk: break',
      '        total += len(chunk)',
      'except ConnectionResetError:',
      '    print("reset")',
      'print(got[:12].decode(), total - head_end)',
    ].join('\n');
    const result = await run('python3', ['-c', script], { timeoutMs: 30_000 });
    expect(result.stderr).toBe('');
    expect(result.stdout.toString().trim()).toBe(`HTTP/1.1 200 ${SIZE}`);
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path === path));
    const record = records.find((x): x is RequestRecord => x.type === 'request' && x.path === path)!;
    expect(record).toMatchObject({ status: 200, error: null, bytes_to_client: SIZE });
  }, 40_000);
});
