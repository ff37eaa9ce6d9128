import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { LAB_NAMES, startLabGateway, startLabOrigin, type LabOrigin } from './support/bypass-lab';
import type { TestGateway } from './support/gateway';
import { connectTunnel } from './support/h2-client';
import { rawExchange } from './support/raw-tcp';
import { curl } from './support/run';
import { chunked, statuses, tlsRawExchange } from './support/tls-raw';

/**
 * Review item 13 (part): Node's HTTP/1 parser accepts a request line with more than one space
 * between its parts (`GET  /path HTTP/1.1`), which RFC 9112 section 3 does not allow and
 * another parser on the path may read differently. Every HTTP/1 entry refuses it with 400 and
 * closes: the explicit listener, the transparent HTTP listener and the decrypted HTTP/1.1 in
 * inspected tunnels. The lab origin records every request it gets, so one that slipped through
 * would show up there. Controls: what real clients send (pipelining, bodies that look like
 * request lines, requests in many small pieces, Expect: 100-continue, HEAD) still works.
 */
describe('bypass: request lines with more than one space', () => {
  let lab: LabOrigin;
  let gw: TestGateway;
  let transparentPort = 0;
  let ca = '';

  beforeAll(async () => {
    lab = await startLabOrigin();
    gw = await startLabGateway(lab, {
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  transparent_http: 127.0.0.1:0',
      extraConfig: `transparent:\n  http_origin_port: ${lab.httpPort}`,
    });
    transparentPort = gw.gateway.address('transparentHttp')!.port;
    ca = readFileSync(gw.caFile, 'utf8');
  });

  afterAll(async () => {
    await gw?.stop();
    await lab?.close();
  });

  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100));
  const plainHost = (): string => `storage.test:${lab.httpPort}`;
  const tlsHost = (): string => `storage.test:${lab.httpsPort}`;
  const absolute = (path: string): string => `http://${plainHost()}${path}`;
  /** Whether a refusal for extra spaces was logged like a parser error, by `frontend`. */
  const refusalLogged = (frontend: string): boolean =>
    gw.logs().some((l) => l.msg === 'request refused by the HTTP parser' && l.frontend === frontend && String(l.reason).includes('more than one space'));

  /** Writes `payload` in pieces of `size` bytes with Nagle off, `gapMs` apart; collects the reply until close. */
  function inPieces(port: number, payload: string, size: number, gapMs = 2, timeoutMs = 5000): Promise<string> {
    const bytes = Buffer.from(payload, 'latin1');
    return new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', async () => {
        socket.setNoDelay(true);
        for (let at = 0; at < bytes.length && socket.writable; at += size) {
          socket.write(bytes.subarray(at, at + size));
          await new Promise((r) => setTimeout(r, gapMs));
        }
      });
      let data = '';
      socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
      socket.on('error', () => undefined);
      const timer = setTimeout(() => socket.destroy(), timeoutMs);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(data);
      });
    });
  }

  /** Sends `first`, waits for its whole response, then sends `second` on the same connection. */
  function thenOnSameConnection(port: number, first: string, second: string): Promise<string> {
    return new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write(first));
      let data = '';
      let sentSecond = false;
      socket.on('data', (chunk: Buffer) => {
        data += chunk.toString('latin1');
        if (!sentSecond && /\r\n\r\n\{[^}]*\}$/.test(data)) {
          sentSecond = true;
          socket.write(second);
        }
      });
      socket.on('error', () => undefined);
      const timer = setTimeout(() => socket.destroy(), 5000);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(data);
      });
    });
  }

  describe('explicit proxy', () => {
    test.each([
      ['two spaces after the method', (p: string) => `GET  ${absolute(p)} HTTP/1.1\r\nHost: ${plainHost()}\r\n\r\n`],
      ['two spaces before the version', (p: string) => `GET ${absolute(p)}  HTTP/1.1\r\nHost: ${plainHost()}\r\n\r\n`],
      ['spaces on both sides', (p: string) => `GET   ${absolute(p)}   HTTP/1.1\r\nHost: ${plainHost()}\r\n\r\n`],
    ])('%s: 400, closed, nothing reaches the origin', async (name, request) => {
      const path = `/public/explicit-${name.replace(/ /g, '-')}`;
      const reply = await rawExchange(gw.explicitPort, request(path));
      await settle();
      console.log(`explicit, ${name}: ${JSON.stringify(reply.split('\r\n')[0])}; origin saw ${lab.requestsFor(path).length}`);
      expect(reply).toMatch(/^HTTP\/1\.1 400 /);
      expect(reply).toMatch(/connection: close/i);
      expect(lab.requestsFor(path)).toEqual([]);
    });

    test('CONNECT with two spaces: 400 and no tunnel', async () => {
      const reply = await rawExchange(gw.explicitPort, `CONNECT  ${tlsHost()} HTTP/1.1\r\nHost: ${tlsHost()}\r\n\r\n`);
      console.log(`explicit, CONNECT: ${JSON.stringify(reply.split('\r\n')[0])}`);
      expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    });

    test('sent one byte per write: 400, nothing reaches the origin', async () => {
      const reply = await inPieces(gw.explicitPort, `GET  ${absolute('/public/explicit-bytewise')} HTTP/1.1\r\nHost: ${plainHost()}\r\n\r\n`, 1);
      await settle();
      console.log(`explicit, one byte per write: ${JSON.stringify(reply.split('\r\n')[0])}`);
      expect(reply).toMatch(/^HTTP\/1\.1 400 /);
      expect(lab.requestsFor('/public/explicit-bytewise')).toEqual([]);
    });

    test('pipelined behind a valid request in the same write: refused, the bad one never reaches the origin', async () => {
      const reply = await rawExchange(
        gw.explicitPort,
        `GET ${absolute('/public/explicit-first')} HTTP/1.1\r\nHost: ${plainHost()}\r\n\r\nGET  ${absolute('/public/explicit-second')} HTTP/1.1\r\nHost: ${plainHost()}\r\n\r\n`,
      );
      await settle();
      console.log(`explicit, pipelined: statuses ${JSON.stringify(statuses(reply))}`);
      expect(statuses(reply)).toContain(400);
      expect(statuses(reply)[statuses(reply).length - 1]).toBe(400);
      expect(lab.requestsFor('/public/explicit-second')).toEqual([]);
    });

    test('on a kept-alive connection after a served request: the refusal comes after its response', async () => {
      const reply = await thenOnSameConnection(
        gw.explicitPort,
        `GET ${absolute('/public/kept-1')} HTTP/1.1\r\nHost: ${plainHost()}\r\n\r\n`,
        `GET ${absolute('/public/kept-2')}  HTTP/1.1\r\nHost: ${plainHost()}\r\n\r\n`,
      );
      await settle();
      console.log(`explicit, kept alive: statuses ${JSON.stringify(statuses(reply))}`);
      expect(statuses(reply)).toEqual([200, 400]);
      expect(lab.requestsFor('/public/kept-2')).toEqual([]);
    });

    test('refusals are logged with their reason, like parser errors', () => {
      expect(refusalLogged('explicit')).toBe(true);
    });
  });

  describe('transparent HTTP listener', () => {
    test('two spaces after the method: 400, nothing reaches the origin', async () => {
      const reply = await rawExchange(transparentPort, 'GET  /public/transparent HTTP/1.1\r\nHost: storage.test\r\n\r\n');
      await settle();
      console.log(`transparent: ${JSON.stringify(reply.split('\r\n')[0])}; origin saw ${lab.requestsFor('/public/transparent').length}`);
      expect(reply).toMatch(/^HTTP\/1\.1 400 /);
      expect(lab.requestsFor('/public/transparent')).toEqual([]);
      expect(refusalLogged('transparent-http')).toBe(true);
    });

    test('after a served request on the same connection: 200, then 400', async () => {
      const reply = await thenOnSameConnection(transparentPort, 'GET /public/t-1 HTTP/1.1\r\nHost: storage.test\r\n\r\n', 'GET /public/t-2  HTTP/1.1\r\nHost: storage.test\r\n\r\n');
      await settle();
      console.log(`transparent, kept alive: statuses ${JSON.stringify(statuses(reply))}`);
      expect(statuses(reply)).toEqual([200, 400]);
      expect(lab.requestsFor('/public/t-2')).toEqual([]);
    });
  });

  describe('inside an inspected tunnel', () => {
    test('openssl s_client: two spaces after the method: 400, nothing reaches the origin', async () => {
      const { text, verified } = await tlsRawExchange({
        proxyPort: gw.explicitPort,
        connect: tlsHost(),
        sni: 'storage.test',
        caFile: gw.caFile,
        payload: `GET  /public/tunnel HTTP/1.1\r\nHost: ${tlsHost()}\r\n\r\n`,
      });
      await settle();
      console.log(`tunnel: ${JSON.stringify(text.split('\r\n')[0])}; origin saw ${lab.requestsFor('/public/tunnel').length}`);
      expect(verified).toBe(true);
      expect(text).toMatch(/^HTTP\/1\.1 400 /);
      expect(lab.requestsFor('/public/tunnel')).toEqual([]);
    });

    test('openssl s_client: pipelined behind a valid request, two spaces before the version', async () => {
      const { text } = await tlsRawExchange({
        proxyPort: gw.explicitPort,
        connect: tlsHost(),
        sni: 'storage.test',
        caFile: gw.caFile,
        payload: `GET /public/tunnel-1 HTTP/1.1\r\nHost: ${tlsHost()}\r\n\r\nGET /public/tunnel-2  HTTP/1.1\r\nHost: ${tlsHost()}\r\n\r\n`,
      });
      await settle();
      console.log(`tunnel, pipelined: statuses ${JSON.stringify(statuses(text))}`);
      expect(statuses(text)[statuses(text).length - 1]).toBe(400);
      expect(lab.requestsFor('/public/tunnel-2')).toEqual([]);
    });

    test('one TLS record per byte: 400', async () => {
      const raw = await connectTunnel(gw.explicitPort, tlsHost());
      const secure = tls.connect({ socket: raw, servername: 'storage.test', ca, ALPNProtocols: ['http/1.1'] });
      secure.setNoDelay(true);
      let data = '';
      secure.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
      secure.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => secure.once('close', () => resolve()));
      await new Promise<void>((resolve) => secure.once('secureConnect', () => resolve()));
      for (const byte of `GET  /public/tunnel-bytewise HTTP/1.1\r\nHost: ${tlsHost()}\r\n\r\n`) {
        if (!secure.writable) break;
        secure.write(byte);
        await new Promise((r) => setTimeout(r, 2));
      }
      await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))]);
      secure.destroy();
      await settle();
      console.log(`tunnel, one record per byte: ${JSON.stringify(data.split('\r\n')[0])}`);
      expect(data).toMatch(/^HTTP\/1\.1 400 /);
      expect(lab.requestsFor('/public/tunnel-bytewise')).toEqual([]);
      expect(gw.logs().some((l) => l.msg === 'decrypted request refused by the HTTP parser' && String(l.reason).includes('more than one space'))).toBe(true);
    });
  });

  describe('controls: what clients send is still served', () => {
    const looksLikeARequest = `GET  /admin/secret HTTP/1.1\r\nHost: storage.test\r\n\r\n`;

    test('explicit: pipelined requests whose bodies hold request-line text, one byte per write', async () => {
      const body = `${looksLikeARequest}GET /public/x  HTTP/1.1\r\n`;
      const payload =
        `POST ${absolute('/public/c-1')} HTTP/1.1\r\nHost: ${plainHost()}\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
        `POST ${absolute('/public/c-2')} HTTP/1.1\r\nHost: ${plainHost()}\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(body)}` +
        `HEAD ${absolute('/public/c-3')} HTTP/1.1\r\nHost: ${plainHost()}\r\n\r\n` +
        `GET ${absolute('/public/c-4')} HTTP/1.1\r\nHost: ${plainHost()}\r\nConnection: close\r\n\r\n`;
      const reply = await inPieces(gw.explicitPort, payload, 1, 0, 10_000);
      expect(statuses(reply)).toEqual([200, 200, 200, 200]);
      expect(lab.requestsFor('/public/c-1')[0]?.body).toBe(body);
      expect(lab.requestsFor('/public/c-2')[0]?.body).toBe(body);
      expect(lab.requestsFor('/admin/secret')).toEqual([]);
    });

    test('transparent: the same, in 7-byte pieces', async () => {
      const body = looksLikeARequest;
      const payload = `POST /public/tc-1 HTTP/1.1\r\nHost: storage.test\r\nContent-Length: ${body.length}\r\n\r\n${body}GET /public/tc-2 HTTP/1.1\r\nHost: storage.test\r\nConnection: close\r\n\r\n`;
      const reply = await inPieces(transparentPort, payload, 7);
      expect(statuses(reply)).toEqual([200, 200]);
      expect(lab.requestsFor('/public/tc-1')[0]?.body).toBe(body);
    });

    test('inspected tunnel: pipelined requests with such bodies', async () => {
      const body = looksLikeARequest;
      const { text } = await tlsRawExchange({
        proxyPort: gw.explicitPort,
        connect: tlsHost(),
        sni: 'storage.test',
        caFile: gw.caFile,
        payload:
          `POST /public/ti-1 HTTP/1.1\r\nHost: ${tlsHost()}\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(body)}` + `GET /public/ti-2 HTTP/1.1\r\nHost: ${tlsHost()}\r\nConnection: close\r\n\r\n`,
      });
      expect(statuses(text)).toEqual([200, 200]);
      expect(lab.requestsFor('/public/ti-1')[0]?.body).toBe(body);
      expect(lab.requestsFor('/admin/secret')).toEqual([]);
    });

    test('curl: Expect: 100-continue with a body, plain and inspected', async () => {
      const data = 'x'.repeat(70_000);
      const plain = await curl(['-x', gw.proxy, '-H', 'Expect: 100-continue', '--data-binary', data, absolute('/public/expect')]);
      expect(plain.status).toBe(200);
      const inspected = await curl(['-x', gw.proxy, '--cacert', gw.caFile, '--http1.1', '-H', 'Expect: 100-continue', '--data-binary', data, `https://${tlsHost()}/public/expect-tls`]);
      expect(inspected.status).toBe(200);
      expect(lab.requestsFor('/public/expect')[0]?.body.length).toBe(data.length);
      expect(lab.requestsFor('/public/expect-tls')[0]?.body.length).toBe(data.length);
    });

    test('the lab names are all still served through CONNECT (tunnels are not tracked past CONNECT)', async () => {
      for (const name of LAB_NAMES.filter((n) => n === 'storage.test' || n === 'victim.test')) {
        const res = await curl(['-x', gw.proxy, '--cacert', gw.caFile, `https://${name}:${lab.httpsPort}/public/connect-${name}`]);
        expect(res.status).toBe(200);
      }
    });
  });
});
