import type http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { AddressGuard } from '../../src/egress/address-guard';
import { Egress } from '../../src/egress/egress';
import { createOriginContext } from '../../src/egress/origin-tls';
import { Resolver } from '../../src/egress/resolve';
import { normaliseHost } from '../../src/protocol/host';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { issue, tempDir, writePem } from './support/pki';
import { curl, run } from './support/run';

/**
 * A newly inspected name: the origin connection is opened while the certificate is minted and
 * the client's handshake runs, and the first request uses that connection rather than dialling
 * its own. Counted at the origin: one TLS connection per name, for HTTP/1.1 and HTTP/2 clients.
 */

interface CountingOrigin {
  readonly port: number;
  /** TLS connections accepted, by server name, with the protocol each negotiated. */
  readonly accepted: { servername: string; protocol: string }[];
  close(): Promise<void>;
}

/** An origin speaking h2 and http/1.1 on one port (an HTTP/2 server allowing HTTP/1 clients). */
async function startCountingOrigin(cert: string, key: string): Promise<CountingOrigin> {
  const accepted: { servername: string; protocol: string }[] = [];
  const handler = (_req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello');
  };
  const server = http2.createSecureServer({ cert, key, allowHTTP1: true, ALPNProtocols: ['h2', 'http/1.1'] }, handler);
  server.on('secureConnection', (socket: TLSSocket) => {
    accepted.push({ servername: (socket as TLSSocket & { servername?: string }).servername ?? '', protocol: String(socket.alpnProtocol) });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('origin warm-up for newly inspected names', () => {
  let gw: TestGateway;
  let origin: CountingOrigin;
  let caFile: string;

  beforeAll(async () => {
    const dir = tempDir('warmup');
    const ca = issue({ commonName: 'warmup origin CA', isCa: true });
    const names = ['one.test', 'two.test', 'three.test', 'four.test', 'five.test', 'six.test', 'seven.test', 'eight.test'];
    const leaf = issue({ commonName: 'one.test', dnsNames: names, issuer: ca });
    caFile = writePem(dir, 'origin-ca.pem', ca.certPem);
    origin = await startCountingOrigin(leaf.certPem + ca.certPem, leaf.keyPem);
    gw = await startTestGateway({
      allowedPorts: { tunnel: [origin.port], http: [80] },
      hostNames: names,
      upstreamCaFile: caFile,
      policies: { 'p.yaml': 'rules:\n  - name: inspect-tests\n    match: [".test"]\n    action: inspect\n' },
    });
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
  });

  const url = (name: string, path: string) => `https://${name}:${origin.port}${path}`;
  const seen = (name: string) => origin.accepted.filter((a) => a.servername === name);
  /**
   * The origin's count of connections for a name, once it has reached `n` and stayed there a
   * moment: under TLS 1.3 a client finishes its handshake before the server does, so the
   * server's count lags what the gateway already did.
   */
  const settledCount = async (name: string, n: number) => {
    await eventually(
      () => seen(name).length,
      (count) => count >= n,
    );
    await new Promise((r) => setTimeout(r, 150));
    return seen(name).length;
  };

  test('an HTTP/1.1 client: the first request of a new name uses the connection opened ahead', async () => {
    const res = await curl(['--http1.1', '-x', gw.proxy, '--cacert', gw.caFile, url('one.test', '/a')]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello');
    expect(await settledCount('one.test', 1)).toBe(1);
    expect(seen('one.test')).toEqual([{ servername: 'one.test', protocol: 'http/1.1' }]);
    // A second tunnel finds the pooled connection: still one.
    expect((await curl(['--http1.1', '-x', gw.proxy, '--cacert', gw.caFile, url('one.test', '/b')])).status).toBe(200);
    expect(await settledCount('one.test', 1)).toBe(1);
  });

  test('an HTTP/2 client: the ALPN handshake is the connection the HTTP/2 session then uses', async () => {
    const res = await curl(['--http2', '-x', gw.proxy, '--cacert', gw.caFile, url('two.test', '/h2')]);
    expect(res.status).toBe(200);
    const [record] = await eventually(
      () => gw.requestRecords('/h2'),
      (r) => r.length === 1,
    );
    expect(record!.http_version).toBe('2.0');
    expect(await settledCount('two.test', 1)).toBe(1);
    expect(seen('two.test')).toEqual([{ servername: 'two.test', protocol: 'h2' }]);
  });

  test('an HTTP/2 client after an HTTP/1.1 one that sent nothing still gets h2 (a held connection is no ALPN answer)', async () => {
    // The first client's tunnel leaves an HTTP/1.1 connection held for a request that never comes.
    const proxy = gw.proxy.replace('http://', '');
    await run('openssl', ['s_client', '-proxy', proxy, '-connect', `eight.test:${origin.port}`, '-servername', 'eight.test', '-alpn', 'http/1.1', '-CAfile', gw.caFile], {
      input: '',
      timeoutMs: 10_000,
    });
    expect(await settledCount('eight.test', 1)).toBe(1);
    expect((await curl(['--http2', '-x', gw.proxy, '--cacert', gw.caFile, url('eight.test', '/then-h2')])).status).toBe(200);
    const [record] = await eventually(
      () => gw.requestRecords('/then-h2'),
      (r) => r.length === 1,
    );
    expect(record!.http_version).toBe('2.0');
  });

  test('a client that completes its handshake but sends no request costs one origin connection, no more', async () => {
    const proxy = gw.proxy.replace('http://', '');
    const res = await run('openssl', ['s_client', '-proxy', proxy, '-connect', `three.test:${origin.port}`, '-servername', 'three.test', '-CAfile', gw.caFile, '-verify_return_error'], {
      input: '',
      timeoutMs: 10_000,
    });
    expect(res.stdout.toString()).toMatch(/Verify return code: 0 \(ok\)/);
    await eventually(
      () => seen('three.test').length,
      (n) => n === 1,
    );
  });

  describe('the egress door holds a connection opened ahead for the next connect()', () => {
    let egress: Egress;

    beforeAll(() => {
      egress = new Egress({
        resolver: new Resolver({ hosts: { 'four.test': '127.0.0.1', 'five.test': '127.0.0.1', 'six.test': '127.0.0.1', 'seven.test': '127.0.0.1' } }),
        guard: new AddressGuard(['127.0.0.0/8']),
        isOwnListener: () => false,
        connectTimeoutMs: 5_000,
        originContext: createOriginContext(caFile),
        aheadMs: 300,
      });
    });

    const target = (name: string) => {
      const host = normaliseHost(name);
      if (!host.ok) throw new Error(`bad test name ${name}`);
      return { host: host.host, port: origin.port };
    };
    const tls = (name: string, alpn: string[]) => ({ servername: name, verifyCertificate: true, alpn });

    test('taken by a connect() whose protocols accept it; one at a time per origin', async () => {
      const [first, second] = await Promise.all([egress.openAhead(target('four.test'), tls('four.test', ['http/1.1'])), egress.openAhead(target('four.test'), tls('four.test', ['http/1.1']))]);
      // The second asks for what is already on its way: it shares the outcome, nothing is dialled.
      expect(first).toBe('http/1.1');
      expect(second).toBe('http/1.1');
      expect(egress.hasAhead(target('four.test'), tls('four.test', ['http/1.1']))).toBe(true);
      // An HTTP/2 connect() cannot use an http/1.1 connection: it dials its own.
      const h2 = await egress.connect(target('four.test'), { tls: tls('four.test', ['h2']) });
      expect((h2.socket as TLSSocket).alpnProtocol).toBe('h2');
      const h1 = await egress.connect(target('four.test'), { tls: tls('four.test', ['http/1.1']) });
      expect((h1.socket as TLSSocket).alpnProtocol).toBe('http/1.1');
      expect(egress.hasAhead(target('four.test'), tls('four.test', ['http/1.1']))).toBe(false);
      // Counted before the sockets close: a server counts a handshake only once it completes.
      expect(await settledCount('four.test', 2)).toBe(2);
      h1.socket.destroy();
      h2.socket.destroy();
    });

    test('a connection held for HTTP/1.1 does not stand in for an ALPN question', async () => {
      expect(await egress.openAhead(target('seven.test'), tls('seven.test', ['http/1.1']))).toBe('http/1.1');
      expect(await egress.openAhead(target('seven.test'), tls('seven.test', ['h2', 'http/1.1']))).toBe('h2');
      expect(await settledCount('seven.test', 2)).toBe(2);
      // Each is taken by the connect() its protocol suits.
      const h2 = await egress.connect(target('seven.test'), { tls: tls('seven.test', ['h2']) });
      const h1 = await egress.connect(target('seven.test'), { tls: tls('seven.test', ['http/1.1']) });
      expect([(h2.socket as TLSSocket).alpnProtocol, (h1.socket as TLSSocket).alpnProtocol]).toEqual(['h2', 'http/1.1']);
      expect(await settledCount('seven.test', 2)).toBe(2);
      h1.socket.destroy();
      h2.socket.destroy();
    });

    test('an unclaimed connection is closed when its wait ends, and a later connect() dials anew', async () => {
      expect(await egress.openAhead(target('five.test'), tls('five.test', ['http/1.1']))).toBe('http/1.1');
      await eventually(
        () => egress.hasAhead(target('five.test'), tls('five.test', ['http/1.1'])),
        (held) => !held,
        3_000,
      );
      const later = await egress.connect(target('five.test'), { tls: tls('five.test', ['http/1.1']) });
      expect(await settledCount('five.test', 2)).toBe(2);
      later.socket.destroy();
    });

    test('a connect() while the connection is still opening waits for it instead of dialling', async () => {
      const ahead = egress.openAhead(target('six.test'), tls('six.test', ['http/1.1']));
      const connection = await egress.connect(target('six.test'), { tls: tls('six.test', ['http/1.1']) });
      expect(await ahead).toBe('http/1.1');
      expect(await settledCount('six.test', 1)).toBe(1);
      connection.socket.destroy();
    });
  });
});
