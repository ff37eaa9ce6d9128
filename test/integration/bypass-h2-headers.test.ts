import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { ConnectionRecord } from '../../src/audit/record-fields';
import { subscribe } from '../../src/observability/events';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { h2Request, h2Session } from './support/h2-client';
import { FLAG, FRAME, closesWithin, frame, openRawH2, requestBlock, type RawH2Connection } from './support/h2-frames';
import { issue, tempDir, writePem } from './support/pki';

/**
 * Review item 12: an HTTP/2 header block trickled inside an inspected tunnel was held until
 * limits.client_idle_timeout, while HTTP/1.1 gets 408 after limits.header_timeout. Node's
 * HTTP/2 server has no header deadline and a partial block produces no event, so the gateway
 * bounds it itself. Here header_timeout is 1s and client_idle_timeout 60s: a session that is
 * still open after 3s was held by the idle timeout, not the header deadline. The controls show
 * that what clients legitimately do (idle between requests, PING, long downloads) still works.
 */
const HEADER_TIMEOUT_MS = 1000;
const NAMES = ['fresh.test', 'served.test', 'parallel.test', 'bytes.test', 'idle.test', 'ping.test', 'download.test'];

describe('bypass: HTTP/2 header blocks trickled inside an inspected tunnel', () => {
  let origin: http2.Http2SecureServer;
  let port = 0;
  let gw: TestGateway;
  let ca = '';
  const breaches: { limit: string; frontend: string }[] = [];
  const stopBreaches = subscribe('tollgate:limit:breached', (m) => breaches.push(m));
  const timers = new Set<NodeJS.Timeout>();
  const every = (ms: number, fn: () => void): NodeJS.Timeout => {
    const timer = setInterval(fn, ms);
    timers.add(timer);
    return timer;
  };

  beforeAll(async () => {
    const dir = tempDir('h2-trickle');
    const root = issue({ commonName: 'h2 trickle root', isCa: true });
    const leaf = issue({ commonName: 'fresh.test', dnsNames: NAMES, issuer: root });
    origin = http2.createSecureServer({ cert: leaf.certPem, key: leaf.keyPem, allowHTTP1: true }, (req, res) => {
      req.on('error', () => undefined);
      if (req.url.startsWith('/slow')) {
        // A download that lasts 3.5 header timeouts, one chunk every 250 ms.
        res.writeHead(200, { 'content-type': 'text/plain' });
        let sent = 0;
        const timer = setInterval(() => {
          if (++sent < 14) res.write(`chunk ${sent}\n`);
          else {
            clearInterval(timer);
            res.end('done\n');
          }
        }, 250);
        res.on('close', () => clearInterval(timer));
        return;
      }
      req.resume();
      req.on('end', () => res.end(`hello ${req.url}\n`));
    });
    origin.on('sessionError', () => undefined);
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    port = (origin.address() as AddressInfo).port;
    gw = await startTestGateway({
      allowedPorts: { tunnel: [port], http: [] },
      hostNames: NAMES,
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      policies: { 'p.yaml': `rules:\n  - match: [${NAMES.join(', ')}]\n    action: inspect\n` },
      extraConfig: ['limits:', `  header_timeout: ${HEADER_TIMEOUT_MS}ms`, '  client_idle_timeout: 60s'].join('\n'),
    });
    ca = readFileSync(gw.caFile, 'utf8');
  });

  afterAll(async () => {
    stopBreaches();
    for (const timer of timers) clearInterval(timer);
    await gw?.stop();
    await new Promise<void>((resolve) => origin.close(() => resolve()));
  });

  const authority = (name: string): string => `${name}:${port}`;
  function trickleContinuations(connection: RawH2Connection, streamId: number, rest: Buffer): void {
    let sent = 0;
    every(400, () => sent < 6 && connection.send(frame(FRAME.CONTINUATION, 0, streamId, rest.subarray(sent, ++sent))));
  }
  const goaway = (connection: RawH2Connection): boolean => connection.frames.some((f) => f.type === FRAME.GOAWAY);

  /** The connection record of the tunnel to `name`, once written. */
  async function connectionRecord(name: string): Promise<ConnectionRecord | undefined> {
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'connection' && x.target === authority(name)));
    return records.find((x): x is ConnectionRecord => x.type === 'connection' && x.target === authority(name));
  }

  async function expectClosedByHeaderDeadline(connection: RawH2Connection, name: string): Promise<void> {
    const closed = await closesWithin(connection, 3 * HEADER_TIMEOUT_MS);
    console.log(`${name}: closed within ${3 * HEADER_TIMEOUT_MS} ms: ${closed}; GOAWAY: ${goaway(connection)}`);
    expect(closed).toBe(true);
    expect(goaway(connection)).toBe(true);
    const record = await connectionRecord(name);
    expect(record?.close).toBe('timeout');
    expect(record?.error).toMatch(/^TG_ERR_CLIENT_TIMEOUT: .*limits\.header_timeout/);
  }

  test('a fresh session whose first header block is trickled in CONTINUATION frames is closed after header_timeout', async () => {
    const connection = await openRawH2(gw.explicitPort, 'fresh.test', port, ca);
    const block = requestBlock('GET', '/fresh', authority('fresh.test'));
    connection.send(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, block.subarray(0, 2)));
    // One byte of the block every 400 ms and never END_HEADERS; at most 6 CONTINUATION frames,
    // since nghttp2 ends a session after 8 of them on its own.
    trickleContinuations(connection, 1, block.subarray(2));
    await expectClosedByHeaderDeadline(connection, 'fresh.test');
    expect(gw.logs().some((l) => l.limit === 'limits.header_timeout')).toBe(true);
    expect(breaches).toContainEqual({ limit: 'header_timeout', frontend: 'explicit-connect' });
  });

  test('after a served request, a HEADERS frame written a few bytes at a time is closed after header_timeout', async () => {
    const connection = await openRawH2(gw.explicitPort, 'served.test', port, ca);
    connection.send(frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1, requestBlock('GET', '/first', authority('served.test'))));
    await eventually(
      () => connection.frames,
      (f) => f.some((x) => x.streamId === 1 && x.type === FRAME.DATA && (x.flags & FLAG.END_STREAM) !== 0),
    );
    expect(connection.frames.some((x) => x.streamId === 1 && x.type === FRAME.HEADERS)).toBe(true);
    const next = frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 3, requestBlock('GET', '/second', authority('served.test')));
    let offset = 0;
    every(150, () => {
      if (offset >= next.length - 1) return false;
      const piece = next.subarray(offset, offset + 3);
      offset += 3;
      return connection.send(piece);
    });
    await expectClosedByHeaderDeadline(connection, 'served.test');
  });

  test('a header block trickled beside an open upload stream is closed after header_timeout too', async () => {
    const connection = await openRawH2(gw.explicitPort, 'parallel.test', port, ca);
    // Stream 1 stays open: a POST whose body has begun and not ended. (No frame of any kind may
    // come between a HEADERS frame without END_HEADERS and its CONTINUATION, RFC 9113 6.10.)
    connection.send(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, requestBlock('POST', '/upload', authority('parallel.test'))));
    connection.send(frame(FRAME.DATA, 0, 1, Buffer.from('part of a body')));
    await new Promise((r) => setTimeout(r, 200));
    const block = requestBlock('GET', '/beside', authority('parallel.test'));
    connection.send(frame(FRAME.HEADERS, FLAG.END_STREAM, 3, block.subarray(0, 2)));
    trickleContinuations(connection, 3, block.subarray(2));
    await expectClosedByHeaderDeadline(connection, 'parallel.test');
  });

  test('a fresh session that only sends frame bytes and never a request is closed after header_timeout', async () => {
    const connection = await openRawH2(gw.explicitPort, 'bytes.test', port, ca);
    const head = frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1, requestBlock('GET', '/never', authority('bytes.test'))).subarray(0, 8);
    let offset = 0;
    // Eight bytes of a frame header: not even a frame has begun.
    every(250, () => offset < head.length && connection.send(head.subarray(offset, ++offset)));
    await expectClosedByHeaderDeadline(connection, 'bytes.test');
  });

  test('control: a session idle for 2.5 header timeouts between requests keeps working', async () => {
    const { session } = await h2Session(gw.explicitPort, 'idle.test', port, ca);
    let goawayReceived = false;
    session.on('goaway', () => (goawayReceived = true));
    try {
      expect((await h2Request(session, '/before')).status).toBe(200);
      await new Promise((r) => setTimeout(r, 2.5 * HEADER_TIMEOUT_MS));
      expect(session.closed || session.destroyed).toBe(false);
      const after = await h2Request(session, '/after');
      expect(after.status).toBe(200);
      expect(after.body).toBe('hello /after\n');
      expect(goawayReceived).toBe(false);
    } finally {
      session.destroy();
    }
  });

  test('control: a served session that only PINGs for 3 header timeouts keeps working', async () => {
    const { session } = await h2Session(gw.explicitPort, 'ping.test', port, ca);
    try {
      expect((await h2Request(session, '/before')).status).toBe(200);
      let pongs = 0;
      const pinger = every(250, () => !session.destroyed && session.ping(() => pongs++));
      await new Promise((r) => setTimeout(r, 3 * HEADER_TIMEOUT_MS));
      clearInterval(pinger);
      expect(pongs).toBeGreaterThanOrEqual(6);
      expect((await h2Request(session, '/after')).status).toBe(200);
    } finally {
      session.destroy();
    }
  });

  test('control: a download lasting 3.5 header timeouts completes', async () => {
    const { session } = await h2Session(gw.explicitPort, 'download.test', port, ca);
    try {
      const reply = await h2Request(session, '/slow', {}, 15_000);
      expect(reply.status).toBe(200);
      expect(reply.body).toMatch(/chunk 13\ndone\n$/);
    } finally {
      session.destroy();
    }
  });
});
