import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import WebSocket, { WebSocketServer } from 'ws';
import type { RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { issue, tempDir, writePem } from './support/pki';

const AWS_KEY = 'AKIAIOSFODNN7EXAMPLE';
const CARD = '4111 1111 1111 1111';

/**
 * A WebSocket origin (the `ws` package's server, permessage-deflate enabled) that records what
 * it received and how each connection closed. /echo echoes; /say?text=... sends that text to
 * the client first, then echoes.
 */
interface Origin {
  readonly port: number;
  /** Messages received, per connection in order of arrival. */
  readonly received: Buffer[][];
  readonly closeCodes: number[];
  readonly extensions: (string | undefined)[];
  close(): Promise<void>;
}

async function startOrigin(tlsOptions?: { cert: string; key: string }): Promise<Origin> {
  const server = tlsOptions ? https.createServer({ ...tlsOptions, ALPNProtocols: ['http/1.1'] }) : http.createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: { threshold: 0 } });
  const received: Buffer[][] = [];
  const closeCodes: number[] = [];
  const extensions: (string | undefined)[] = [];
  wss.on('connection', (ws, req) => {
    const mine: Buffer[] = [];
    received.push(mine);
    extensions.push(req.headers['sec-websocket-extensions']);
    ws.on('message', (data: Buffer, isBinary) => {
      mine.push(Buffer.from(data));
      ws.send(data, { binary: isBinary });
    });
    ws.on('close', (code) => closeCodes.push(code));
    const say = new URL(req.url ?? '/', 'http://origin').searchParams.get('text');
    if (say !== null) ws.send(say);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    closeCodes,
    extensions,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Client {
  readonly ws: WebSocket;
  readonly messages: Buffer[];
  /** Resolves with the close code the client got (or -1 after 10 s). */
  readonly closed: Promise<number>;
}

/** A real WebSocket client (the `ws` package, permessage-deflate offered) through the gateway. */
function open(url: string, gw: TestGateway, ca?: string): Promise<Client> {
  const agent = url.startsWith('wss:') ? new HttpsProxyAgent(gw.proxy) : new HttpProxyAgent(gw.proxy);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { agent, ...(ca ? { ca } : {}), handshakeTimeout: 10_000, perMessageDeflate: true });
    const messages: Buffer[] = [];
    ws.on('message', (data: Buffer) => messages.push(Buffer.from(data)));
    const closed = new Promise<number>((done) => {
      const timer = setTimeout(() => done(-1), 10_000);
      ws.once('close', (code) => {
        clearTimeout(timer);
        done(code);
      });
    });
    ws.once('open', () => resolve({ ws, messages, closed }));
    ws.once('error', reject);
  });
}

/** Sends and waits for the echo (the n-th message received), bounded. */
async function echo(client: Client, data: string | Buffer, options: { fin?: boolean } = {}): Promise<Buffer> {
  const before = client.messages.length;
  client.ws.send(data, options);
  const got = await eventually(
    () => client.messages.length,
    (n) => n > before,
  );
  if (got <= before) throw new Error('no echo within 5 s');
  return client.messages[before]!;
}

async function recordFor(gw: TestGateway, path: string): Promise<RequestRecord> {
  const records = await eventually(
    () => gw.requestRecords(path),
    (r) => r.length === 1,
  );
  expect(records).toHaveLength(1);
  return records[0]!;
}

const POLICY = `rules:
  - name: ws-blocked
    match: origin.test
    action: inspect
    dlp:
      action: deny
      patterns:
        - name: employee_id
          regex: "EMP-[0-9]{6}"
  - name: ws-watched
    match: other.test
    action: inspect
    dlp:
      detectors: [payment_card, aws_access_key_id]
      action: log
  - name: ws-plain
    match: nodlp.test
    action: inspect
`;

describe('DLP on WebSocket messages', () => {
  let gw: TestGateway;
  let plain: Origin;
  let secure: Origin;
  /** Accepts every handshake with permessage-deflate, offered or not (a non-conforming origin). */
  let pushy: net.Server;
  let ca: string;

  beforeAll(async () => {
    const dir = tempDir('ws-dlp');
    const root = issue({ commonName: 'ws dlp root', isCa: true });
    const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test'], issuer: root });
    plain = await startOrigin();
    secure = await startOrigin({ cert: leaf.certPem, key: leaf.keyPem });
    pushy = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', (head: Buffer) => {
        const key = /sec-websocket-key:\s*(\S+)/i.exec(head.toString('latin1'))?.[1] ?? '';
        const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n`);
      });
    });
    await new Promise<void>((resolve) => pushy.listen(0, '127.0.0.1', resolve));
    gw = await startTestGateway({
      allowedPorts: { tunnel: [secure.port], http: [plain.port, (pushy.address() as AddressInfo).port] },
      upstreamCaFile: writePem(dir, 'root.pem', root.certPem),
      hostNames: ['nodlp.test'],
      policies: { 'ws.yaml': POLICY },
    });
    ca = readFileSync(gw.caFile, 'utf8');
  });

  afterAll(async () => {
    await gw.stop();
    await plain.close();
    await secure.close();
    await new Promise<void>((resolve) => {
      pushy.close(() => resolve());
    });
  });

  const url = (host: string, path: string) => `ws://${host}:${plain.port}${path}`;

  test('clean text and binary messages pass both ways unchanged; masking is kept intact', async () => {
    const client = await open(url('origin.test', '/echo?t=clean'), gw);
    expect((await echo(client, 'hello, nothing to see')).toString()).toBe('hello, nothing to see');
    const binary = randomBytes(200_000);
    expect((await echo(client, binary)).equals(binary)).toBe(true);
    client.ws.close(1000);
    expect(await client.closed).toBe(1000);
    const record = await recordFor(gw, '/echo?t=clean');
    expect(record).toMatchObject({ status: 101, action: 'inspect', error: null, dlp: [] });
  });

  test('deny: a client text message with a secret closes the WebSocket with 1008; the origin never gets it', async () => {
    const client = await open(url('origin.test', '/echo?t=deny-text'), gw);
    expect((await echo(client, 'first')).toString()).toBe('first');
    const index = plain.received.length - 1;
    client.ws.send(`id=${AWS_KEY}`);
    expect(await client.closed).toBe(1008);
    await eventually(
      () => plain.closeCodes.length,
      (n) => n >= 1,
    );
    expect(plain.received[index]!.map((m) => m.toString())).toEqual(['first']);
    expect(client.messages.map((m) => m.toString())).toEqual(['first']);
    const record = await recordFor(gw, '/echo?t=deny-text');
    expect(record).toMatchObject({ status: 101, action: 'deny', decision_code: 'dlp', dlp: [{ detector: 'aws_access_key_id', offset: 3, action: 'deny' }] });
    expect(record.reason).toBe('WebSocket message 2 from the client matched the DLP detector aws_access_key_id at byte 3');
    expect(record.error).toMatch(/^TG_ERR_DLP_BLOCKED: /);
    expect(JSON.stringify(record)).not.toContain(AWS_KEY);
    expect(gw.logs().some((l) => l.msg === 'WebSocket closed by DLP' && l.request_id === record.request_id)).toBe(true);
  });

  test('deny: a binary message and a custom pattern are caught too', async () => {
    const client = await open(url('origin.test', '/echo?t=deny-binary'), gw);
    client.ws.send(Buffer.concat([randomBytes(64).map((b) => b & 0x7f), Buffer.from(' EMP-123456 ')]));
    expect(await client.closed).toBe(1008);
    const record = await recordFor(gw, '/echo?t=deny-binary');
    expect(record.dlp).toEqual([{ detector: 'employee_id', offset: 65, action: 'deny' }]);
  });

  test('deny: a secret split across the fragments of one message is found after reassembly', async () => {
    const client = await open(url('origin.test', '/echo?t=fragments'), gw);
    // A clean fragmented message arrives whole at the origin.
    client.ws.send('part one, ', { fin: false });
    client.ws.send('part two, ', { fin: false });
    expect((await echo(client, 'end', { fin: true })).toString()).toBe('part one, part two, end');
    client.ws.send('key AKIAIOSF', { fin: false });
    client.ws.send('ODNN7EXAMPLE done', { fin: true });
    expect(await client.closed).toBe(1008);
    const record = await recordFor(gw, '/echo?t=fragments');
    expect(record.dlp).toEqual([{ detector: 'aws_access_key_id', offset: 4, action: 'deny' }]);
  });

  test('deny: a ping payload is application data too, and is scanned', async () => {
    const client = await open(url('origin.test', '/echo?t=ping'), gw);
    expect((await echo(client, 'before')).toString()).toBe('before');
    client.ws.ping(Buffer.from(AWS_KEY));
    expect(await client.closed).toBe(1008);
    const record = await recordFor(gw, '/echo?t=ping');
    expect(record.reason).toBe('A WebSocket control frame (ping, pong or close) from the client matched the DLP detector aws_access_key_id at byte 0');
  });

  test('deny: a secret the origin sends never reaches the client', async () => {
    const client = await open(url('origin.test', `/echo?t=down&text=${encodeURIComponent(`card ${CARD}`)}`), gw);
    expect(await client.closed).toBe(1008);
    expect(client.messages).toEqual([]);
    const record = await recordFor(gw, `/echo?t=down&text=${encodeURIComponent(`card ${CARD}`)}`);
    expect(record.reason).toBe('WebSocket message 1 from the origin matched the DLP detector payment_card at byte 5');
  });

  test('deny: a message over the 1 MiB scan bound closes the WebSocket with 1009 (fail closed)', async () => {
    const client = await open(url('origin.test', '/echo?t=huge'), gw);
    client.ws.send(Buffer.alloc(2 * 1024 * 1024, 0x61));
    expect(await client.closed).toBe(1009);
    const record = await recordFor(gw, '/echo?t=huge');
    expect(record).toMatchObject({ action: 'deny', decision_code: 'dlp' });
    expect(record.reason).toMatch(/larger than the 1024 KiB DLP scan bound and could not be scanned/);
  });

  test('log: findings are recorded and the messages pass; an oversized message passes unscanned, flagged', async () => {
    const client = await open(url('other.test', '/echo?t=log'), gw);
    expect((await echo(client, `id=${AWS_KEY}`)).toString()).toBe(`id=${AWS_KEY}`);
    expect((await echo(client, Buffer.from(`pay ${CARD}`))).toString()).toBe(`pay ${CARD}`);
    const big = Buffer.alloc(1536 * 1024, 0x62);
    expect((await echo(client, big)).equals(big)).toBe(true);
    client.ws.close(1000);
    expect(await client.closed).toBe(1000);
    const record = await recordFor(gw, '/echo?t=log');
    expect(record).toMatchObject({ action: 'inspect', flagged_by: ['ws-watched/dlp'], error: null });
    // Both directions: the origin's echo carries the same values back.
    expect(record.dlp).toEqual([
      { detector: 'aws_access_key_id', offset: 3, action: 'log' },
      { detector: 'aws_access_key_id', offset: 3, action: 'log' },
      { detector: 'payment_card', offset: 4, action: 'log' },
      { detector: 'payment_card', offset: 4, action: 'log' },
    ]);
    expect(gw.logs().some((l) => l.request_id === record.request_id && String(l.msg).includes('passed on unscanned'))).toBe(true);
  });

  test('permessage-deflate is not negotiated on inspected WebSockets with DLP; it is without DLP', async () => {
    const inspected = await open(url('origin.test', '/echo?t=deflate'), gw);
    expect(inspected.ws.extensions).toBe('');
    inspected.ws.close(1000);
    await inspected.closed;
    const control = await open(url('nodlp.test', '/echo?t=deflate-control'), gw);
    expect(control.ws.extensions).toMatch(/permessage-deflate/);
    expect((await echo(control, 'compressed')).toString()).toBe('compressed');
    control.ws.close(1000);
    await control.closed;
    // The origin saw the offer only from the flow without DLP.
    expect(plain.extensions.slice(-2).map((e) => e !== undefined)).toEqual([false, true]);
  });

  test('an origin that negotiates an extension nobody offered gets the client a 502', async () => {
    const port = (pushy.address() as AddressInfo).port;
    const failure = await open(`ws://origin.test:${port}/echo?t=pushy`, gw).then(
      (client) => {
        client.ws.terminate();
        return 'opened';
      },
      (err: Error) => err.message,
    );
    expect(failure).toMatch(/502/);
    const record = await recordFor(gw, '/echo?t=pushy');
    expect(record.status).toBe(502);
    expect(record.error).toMatch(/^TG_ERR_UPSTREAM_PROTOCOL: .*extension that was not offered/);
  });

  test('wss:// through TLS interception: the same inspection inside the decrypted tunnel', async () => {
    const client = await open(`wss://origin.test:${secure.port}/echo?t=wss`, gw, ca);
    expect((await echo(client, 'clean over TLS')).toString()).toBe('clean over TLS');
    client.ws.send(`token ${AWS_KEY}`);
    expect(await client.closed).toBe(1008);
    const record = await recordFor(gw, '/echo?t=wss');
    expect(record).toMatchObject({ scheme: 'https', action: 'deny', decision_code: 'dlp' });
    expect(secure.received.flat().map((m) => m.toString())).not.toContain(`token ${AWS_KEY}`);
  });
});
