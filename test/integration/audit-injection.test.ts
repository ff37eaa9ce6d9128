import { readFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { startTestGateway, type TestGateway } from './support/gateway';
import { rawExchange } from './support/raw-tcp';

/**
 * Inputs aimed at the records themselves: values that try to end a record and start a forged
 * one, and an origin whose response head is larger than any sane limit. The audit file must
 * stay one JSON object per line, every field escaped, and the gateway must answer for the
 * origin without holding its head in memory.
 */
describe('audit injection and oversized origin heads', () => {
  let gw: TestGateway;
  let origin: net.Server;
  let port = 0;

  beforeAll(async () => {
    // Raw origin: answers /huge with 200 KiB of header fields, everything else with a small 200.
    origin = net.createServer((socket) => {
      socket.on('error', () => undefined);
      let head = '';
      socket.on('data', (chunk: Buffer) => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        if (head.startsWith('GET /huge')) {
          socket.write('HTTP/1.1 200 OK\r\n');
          for (let i = 0; i < 2000; i++) socket.write(`X-Filler-${i}: ${'f'.repeat(100)}\r\n`);
          socket.end('content-length: 2\r\n\r\nok');
        } else socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
      });
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    port = (origin.address() as AddressInfo).port;
    gw = await startTestGateway({ allowedPorts: { tunnel: [443], http: [port] }, policies: { 'p.yaml': 'rules:\n  - match: origin.test\n    action: inspect\n' } });
  });

  afterAll(async () => {
    await gw?.stop();
    await new Promise<void>((resolve) => origin?.close(() => resolve()));
  });

  test('values that try to close a record and forge another stay inside their own field', async () => {
    const host = `origin.test:${port}`;
    const forged = '"}\\n{"type":"connection","action":"splice","forged":true,"x":"';
    const reply = await rawExchange(
      gw.explicitPort,
      `GET http://${host}/a%0A%7B%22forged%22:true%7D?q=${encodeURIComponent(forged)} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: ${forged}\r\nX-Latin: caf\u00e9\u2028x\r\nConnection: close\r\n\r\n`,
    );
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    await gw.gateway.flushAudit();
    const lines = readFileSync(gw.auditFile, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.some((r) => r.forged === true)).toBe(false);
    const record = records.find((r) => r.type === 'request' && String(r.path).startsWith('/a%0A'));
    expect(record).toBeDefined();
    expect((record!.request_headers as Record<string, string>)['user-agent']).toBe(forged);
  });

  test('an origin sending 200 KiB of response headers: 502, and the gateway keeps serving', async () => {
    const host = `origin.test:${port}`;
    const huge = await rawExchange(gw.explicitPort, `GET http://${host}/huge HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    expect(huge).toMatch(/^HTTP\/1\.1 502 /);
    expect(huge).toMatch(/TG_ERR_UPSTREAM_PROTOCOL/);
    const small = await rawExchange(gw.explicitPort, `GET http://${host}/small HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    expect(small).toMatch(/^HTTP\/1\.1 200 /);
  });
});
