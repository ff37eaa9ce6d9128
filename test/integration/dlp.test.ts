import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { RequestRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, startHttpsOrigin, type Origin } from './support/origins';
import { issue, tempDir, writePem } from './support/pki';
import { curl } from './support/run';

/**
 * Upload inspection through the one forwarding path, plain and inspected. The client writes a
 * chunked body in pieces with a pause between them, so the card number really is split across
 * chunks (and TCP segments) when the gateway sees it.
 */
const CARD_PARTS = ['card=4111 1111', ' 1111 1111&amount=5'];
const CARD_DIGITS = ['4111 1111 1111 1111', '4111111111111111'];

const POLICY = `rules:
  - name: uploads-blocked
    match: origin.test
    action: inspect
    dlp:
      action: deny
      patterns:
        - name: employee_id
          regex: "EMP-[0-9]{6}"
  - name: uploads-watched
    match: other.test
    action: inspect
    dlp:
      detectors: [payment_card, aws_access_key_id]
      action: log
`;

interface RawResponse {
  readonly status: number;
  readonly text: string;
  /** How the connection ended: 'end' (FIN) or the socket error code. */
  readonly ended: string;
}

/** Opens a connection to the origin through the gateway: plain to the proxy, or CONNECT + TLS. */
async function connect(gw: TestGateway, scheme: 'http' | 'https', host: string, port: number): Promise<net.Socket> {
  const socket = net.connect(gw.explicitPort, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  if (scheme === 'http') return socket;
  socket.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`);
  await new Promise<void>((resolve, reject) => {
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      if (/^HTTP\/1\.1 200/.test(head)) resolve();
      else reject(new Error(`CONNECT refused: ${head}`));
    };
    socket.on('data', onData);
  });
  const secure = tls.connect({ socket, servername: host, ca: readFileSync(gw.caFile) });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  return secure;
}

/** Sends a chunked POST with the body in `parts`, pausing between them; reads until close. */
async function upload(
  gw: TestGateway,
  scheme: 'http' | 'https',
  host: string,
  port: number,
  path: string,
  parts: readonly string[],
  pauseMs = 150,
  keepAlive = false,
  contentType = 'application/x-www-form-urlencoded',
): Promise<RawResponse> {
  const socket = await connect(gw, scheme, host, port);
  const target = scheme === 'http' ? `http://${host}:${port}${path}` : path;
  let text = '';
  const done = new Promise<string>((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('timeout');
    }, 8000);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code ?? 'error');
    });
    socket.on('end', () => {
      clearTimeout(timer);
      resolve('end');
      socket.destroy();
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve('close');
    });
  });
  socket.write(`POST ${target} HTTP/1.1\r\nHost: ${host}:${port}\r\nContent-Type: ${contentType}\r\nTransfer-Encoding: chunked\r\n${keepAlive ? '' : 'Connection: close\r\n'}\r\n`);
  for (const part of parts) {
    if (socket.destroyed) break;
    socket.write(`${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`);
    await new Promise((r) => setTimeout(r, pauseMs));
  }
  if (!socket.destroyed) socket.write('0\r\n\r\n');
  const ended = await done;
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  return { status, text, ended };
}

describe.each(['http', 'https'] as const)('DLP over %s', (scheme) => {
  let gw: TestGateway;
  let origin: Origin;

  beforeAll(async () => {
    if (scheme === 'https') {
      const dir = tempDir('dlp');
      const root = issue({ commonName: 'dlp root', isCa: true });
      const leaf = issue({ commonName: 'origin.test', dnsNames: ['origin.test', 'other.test'], issuer: root });
      origin = await startHttpsOrigin('dlp', { cert: leaf.certPem, key: leaf.keyPem });
      gw = await startTestGateway({ allowedPorts: { tunnel: [origin.port], http: [] }, upstreamCaFile: writePem(dir, 'root.pem', root.certPem), policies: { 'dlp.yaml': POLICY } });
    } else {
      origin = await startHttpOrigin('dlp');
      gw = await startTestGateway({ allowedPorts: { tunnel: [], http: [origin.port] }, policies: { 'dlp.yaml': POLICY } });
    }
  });

  afterAll(async () => {
    await gw.stop();
    await origin.close();
  });

  async function recordFor(path: string): Promise<RequestRecord> {
    const records = await eventually(gw.audit, (r) => r.some((x) => x.type === 'request' && x.path === path));
    const record = records.find((x): x is RequestRecord => x.type === 'request' && x.path === path);
    expect(record).toBeDefined();
    return record!;
  }

  function expectNoCardAnywhere(): void {
    const audit = readFileSync(gw.auditFile, 'utf8');
    const logs = JSON.stringify(gw.logs());
    for (const digits of CARD_DIGITS) {
      expect(audit).not.toContain(digits);
      expect(logs).not.toContain(digits);
    }
  }

  test('deny: a card split across two chunks is caught; 403 TG_ERR_DLP_BLOCKED; the origin never gets the upload', async () => {
    const path = `/echo?dlp=deny-${scheme}`;
    const res = await upload(gw, scheme, 'origin.test', origin.port, path, CARD_PARTS);
    expect(res.status).toBe(403);
    expect(res.text).toMatch(/x-tollgate-reason: TG_ERR_DLP_BLOCKED/i);
    expect(res.text).toMatch(/payment_card detected at byte 5/);
    // Not just '4111': the block page names the destination, and an ephemeral port can contain it.
    expect(res.text).not.toContain('4111 1111');
    // The scanner holds back the bytes that could be part of a match, so the origin was sent
    // nothing at all: not even the request headers (Node sends them with the first body bytes).
    expect(origin.seen.filter((s) => s.url === path)).toEqual([]);
    const record = await recordFor(path);
    expect(record.status).toBe(403);
    expect(record.error).toMatch(/^TG_ERR_DLP_BLOCKED/);
    expect(record.dlp).toEqual([{ detector: 'payment_card', offset: 5, action: 'deny' }]);
    expect(record).toMatchObject({ action: 'deny', decision_code: 'dlp', reason: 'the upload matched the DLP detector payment_card at byte 5' });
    await gw.gateway.flushAudit();
    expectNoCardAnywhere();
  });

  test('deny: a custom pattern split across chunks', async () => {
    const path = `/echo?dlp=custom-${scheme}`;
    const res = await upload(gw, scheme, 'origin.test', origin.port, path, ['id=EMP-12', '3456&x=1']);
    expect(res.status).toBe(403);
    expect((await recordFor(path)).dlp).toEqual([{ detector: 'employee_id', offset: 3, action: 'deny' }]);
  });

  test('a clean upload passes unchanged', async () => {
    const path = `/echo?dlp=clean-${scheme}`;
    const res = await upload(gw, scheme, 'origin.test', origin.port, path, ['amount=5&', 'note=4111 1111 1111 1112']);
    expect(res.status).toBe(200);
    expect(res.text).toContain('"length":33');
    expect((await recordFor(path)).dlp).toEqual([]);
  });

  test('log: the upload reaches the origin whole; the record is flagged with detector and offset only', async () => {
    const path = `/echo?dlp=log-${scheme}`;
    const res = await upload(gw, scheme, 'other.test', origin.port, path, CARD_PARTS);
    expect(res.status).toBe(200);
    expect(res.text).toContain(`"length":${CARD_PARTS.join('').length}`);
    const record = await recordFor(path);
    expect(record.flagged_by).toEqual(['uploads-watched/dlp']);
    expect(record.dlp).toEqual([{ detector: 'payment_card', offset: 5, action: 'log' }]);
    expect(record).toMatchObject({ action: 'inspect', decision_code: 'rule' });
    await gw.gateway.flushAudit();
    expectNoCardAnywhere();
  });

  test('deny after the origin already answered: the upload is cut, the record still names the finding', async () => {
    const path = `/hello?dlp=late-${scheme}`;
    // /hello answers without reading the body; the first part is long enough to be released
    // to the origin, so the response completes before the key arrives. (Not a form body: those
    // are also scanned decoded, and a chunk of one waits for the next before it goes on.)
    const res = await upload(gw, scheme, 'origin.test', origin.port, path, ['x'.repeat(2000), 'key=AKIAIOSFODNN7EXAMPLE&'], 300, true, 'application/octet-stream');
    expect(res.status).toBe(200);
    // The connection is cut rather than left open for another request.
    expect(res.ended).not.toBe('timeout');
    const record = await recordFor(path);
    expect(record.dlp).toEqual([{ detector: 'aws_access_key_id', offset: 2004, action: 'deny' }]);
    expect(record.error).toMatch(/^TG_ERR_DLP_BLOCKED/);
  });

  test('log: an upload DLP cannot read goes through, and its record says it was not inspected', async () => {
    const url = `${scheme}://other.test:${origin.port}/echo?dlp=uninspectable`;
    const args = scheme === 'https' ? ['-x', gw.proxy, '--cacert', gw.caFile] : ['-x', gw.proxy];
    const res = await curl([...args, '-H', 'Content-Encoding: zstd', '--data-binary', 'opaque bytes', url]);
    expect(res.status).toBe(200);
    const record = await recordFor('/echo?dlp=uninspectable');
    expect(record.flagged_by).toEqual(['uploads-watched/dlp-uninspectable']);
  });

  test('curl upload with an AWS key id is blocked (Content-Length body)', async () => {
    const url = `${scheme}://origin.test:${origin.port}/echo?dlp=curl`;
    const args = scheme === 'https' ? ['-x', gw.proxy, '--cacert', gw.caFile] : ['-x', gw.proxy];
    const res = await curl([...args, '--data-binary', 'aws_access_key_id=AKIAIOSFODNN7EXAMPLE', url]);
    expect(res.status).toBe(403);
    expect(res.headers['x-tollgate-reason']).toBe('TG_ERR_DLP_BLOCKED');
    expect(res.body).not.toContain('AKIAIOSFODNN7EXAMPLE');
  });
});
