import net from 'node:net';
import type { ConnectionRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';

/**
 * limits.peek_timeout bounds a spliced tunnel whose client says nothing to an origin that says
 * nothing either (README "What a tunnel may carry"): the tunnel is closed and recorded, rather
 * than held until client_idle_timeout.
 */
describe('a silent client in a spliced tunnel to a silent origin', () => {
  let gw: TestGateway;
  let silent: net.Server;
  let silentPort: number;
  const held = new Set<net.Socket>();

  beforeAll(async () => {
    silent = net.createServer((socket) => {
      held.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => held.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentPort = (silent.address() as net.AddressInfo).port;
    gw = await startTestGateway({
      allowedPorts: { tunnel: [silentPort], http: [] },
      policies: { 'p.yaml': 'rules:\n  - match: origin.test\n    action: splice\n' },
      extraConfig: 'limits:\n  peek_timeout: 700ms\n  client_idle_timeout: 60s',
    });
  });

  afterAll(async () => {
    await gw?.stop();
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  test('is closed at peek_timeout, with a record that says so', async () => {
    const started = Date.now();
    const outcome = await new Promise<{ reply: string; closedAfter: number }>((resolve) => {
      const socket = net.connect(gw.explicitPort, '127.0.0.1', () => socket.write(`CONNECT origin.test:${silentPort} HTTP/1.1\r\nHost: origin.test:${silentPort}\r\n\r\n`));
      let reply = '';
      socket.on('data', (chunk: Buffer) => (reply += chunk.toString('latin1')));
      socket.on('error', () => undefined);
      const timer = setTimeout(() => socket.destroy(), 8000);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve({ reply, closedAfter: Date.now() - started });
      });
    });
    expect(outcome.reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(outcome.closedAfter).toBeGreaterThanOrEqual(600);
    expect(outcome.closedAfter).toBeLessThan(5000);
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'connection' && x.target === `origin.test:${silentPort}`));
    const record = records.find((x): x is ConnectionRecord => x.type === 'connection' && x.target === `origin.test:${silentPort}`)!;
    expect(record).toMatchObject({ action: 'splice', close: 'refused', first_bytes: 'none' });
    expect(record.error).toMatch(/TG_ERR_CLIENT_TIMEOUT/);
  });
});
