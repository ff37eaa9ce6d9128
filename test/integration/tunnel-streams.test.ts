import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { ConnectionRecord } from '../../src/audit/record-fields';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { issue, tempDir, writePem } from './support/pki';
import { run } from './support/run';

/**
 * TLS that is not HTTP, through CONNECT and SOCKS tunnels, with python3's own imaplib and
 * smtplib and with openssl s_client: IMAPS and SMTPS origins greet first (server-first), spliced
 * and inspected; inspected streams are relayed decrypted with the rule's DLP on both directions.
 */

const AWS_KEY = 'AKIAIOSFODNN7EXAMPLE';

/**
 * Opens the tunnel (CONNECT or SOCKS5 with a host name) itself and hands the socket to imaplib or
 * smtplib, which do their own TLS on it. Prints one JSON line: what the server answered, or the error.
 */
const PY_CLIENT = String.raw`
import imaplib, json, smtplib, socket, ssl, struct, sys
mode, proxy_port, host, port, cafile, proto, payload = sys.argv[1:8]
proxy_port, port = int(proxy_port), int(port)

def tunnel():
    s = socket.create_connection(('127.0.0.1', proxy_port), timeout=10)
    if mode == 'connect':
        s.sendall(f'CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n'.encode())
        head = b''
        while b'\r\n\r\n' not in head:
            chunk = s.recv(1)
            if not chunk:
                raise OSError('proxy closed during CONNECT')
            head += chunk
        if not head.startswith(b'HTTP/1.1 200'):
            raise OSError('CONNECT refused: ' + head.decode('latin1').split('\r\n')[0])
    else:
        s.sendall(b'\x05\x01\x00')
        if s.recv(2) != b'\x05\x00':
            raise OSError('SOCKS5 method refused')
        s.sendall(b'\x05\x01\x00\x03' + bytes([len(host)]) + host.encode() + struct.pack('>H', port))
        reply = s.recv(10)
        if len(reply) < 2 or reply[1] != 0:
            raise OSError('SOCKS5 connect refused')
    return s

ctx = ssl.create_default_context(cafile=cafile)

class TunnelledIMAP(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout):
        return self.ssl_context.wrap_socket(tunnel(), server_hostname=self.host)

class TunnelledPlainIMAP(imaplib.IMAP4):
    def _create_socket(self, timeout):
        return tunnel()

class TunnelledSMTP(smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):
        return self.context.wrap_socket(tunnel(), server_hostname=self._host)

out = {}
try:
    if proto.startswith('imap'):
        m = TunnelledIMAP(host, port, ssl_context=ctx, timeout=10) if proto == 'imap' else TunnelledPlainIMAP(host, port, timeout=10)
        out['welcome'] = m.welcome.decode()
        out['login'] = m.login('user', 'pw')[0]
        typ, data = m.append('INBOX', None, None, ('Subject: hi\r\n\r\n' + payload + '\r\n').encode())
        out['append'] = typ
        out['logout'] = m.logout()[0]
    else:
        s = TunnelledSMTP(host, port, context=ctx, timeout=10)
        out['welcome'] = 'connected'
        out['ehlo'] = s.ehlo()[0]
        s.sendmail('a@example.com', ['b@example.com'], 'Subject: hi\r\n\r\n' + payload + '\r\n')
        out['sent'] = True
        out['quit'] = s.quit()[0]
except Exception as e:
    out['error'] = type(e).__name__ + ': ' + str(e)
print(json.dumps(out))
`;

interface MailServer {
  readonly port: number;
  /** Everything the server received, per connection, as text. */
  readonly received: string[];
  close(): Promise<void>;
}

/** A small TLS IMAP server: greets first, answers LOGIN, APPEND (with its literal) and LOGOUT. */
function imapHandler(socket: net.Socket, log: (text: string) => void): void {
  socket.write('* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] test server ready\r\n');
  let buffer = '';
  let literal = 0;
  let pendingTag = '';
  socket.on('data', (chunk: Buffer) => {
    log(chunk.toString('latin1'));
    buffer += chunk.toString('latin1');
    for (;;) {
      if (literal > 0) {
        if (buffer.length < literal) return;
        buffer = buffer.slice(literal);
        literal = 0;
        continue;
      }
      const end = buffer.indexOf('\r\n');
      if (end < 0) return;
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (pendingTag) {
        socket.write(`${pendingTag} OK APPEND completed\r\n`);
        pendingTag = '';
        if (line === '') continue;
      }
      const [tag, command] = line.split(' ');
      const upper = (command ?? '').toUpperCase();
      const size = /\{(\d+)\}$/.exec(line);
      if (upper === 'APPEND' && size) {
        literal = Number(size[1]);
        pendingTag = tag!;
        socket.write('+ Ready for literal data\r\n');
      } else if (upper === 'CAPABILITY') socket.write(`* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n${tag} OK done\r\n`);
      else if (upper === 'LOGOUT') socket.end(`* BYE logging out\r\n${tag} OK LOGOUT completed\r\n`);
      else socket.write(`${tag} OK ${upper} completed\r\n`);
    }
  });
}

/** A small TLS SMTP server: greets first, then EHLO, MAIL, RCPT, DATA (to the lone dot), QUIT. */
function smtpHandler(socket: tls.TLSSocket, log: (text: string) => void): void {
  socket.write('220 mail.test ESMTP test server ready\r\n');
  let buffer = '';
  let inData = false;
  socket.on('data', (chunk: Buffer) => {
    log(chunk.toString('latin1'));
    buffer += chunk.toString('latin1');
    for (;;) {
      if (inData) {
        const end = buffer.indexOf('\r\n.\r\n');
        if (end < 0) return;
        buffer = buffer.slice(end + 5);
        inData = false;
        socket.write('250 OK queued\r\n');
        continue;
      }
      const end = buffer.indexOf('\r\n');
      if (end < 0) return;
      const line = buffer.slice(0, end).toUpperCase();
      buffer = buffer.slice(end + 2);
      if (line.startsWith('EHLO')) socket.write('250-mail.test\r\n250 8BITMIME\r\n');
      else if (line === 'DATA') {
        inData = true;
        socket.write('354 end with <CRLF>.<CRLF>\r\n');
      } else if (line === 'QUIT') socket.end('221 bye\r\n');
      else socket.write('250 OK\r\n');
    }
  });
}

/** A client-first TLS service for openssl s_client: answers each line with "echo: <line>". */
function echoHandler(socket: tls.TLSSocket, log: (text: string) => void): void {
  socket.on('data', (chunk: Buffer) => {
    log(chunk.toString('latin1'));
    // One answer, then the server closes: s_client (which ignores its stdin's EOF) exits on it.
    const line = chunk.toString('latin1').split('\n')[0];
    socket.end(`echo: ${line}\n`);
  });
}

function startTlsServer(cert: { cert: string; key: string }, handler: (socket: tls.TLSSocket, log: (text: string) => void) => void, alpn?: string[]): Promise<MailServer> {
  const received: string[] = [];
  const server = tls.createServer({ ...cert, ...(alpn ? { ALPNProtocols: alpn } : {}) }, (socket) => {
    const index = received.push('') - 1;
    socket.on('error', () => undefined);
    handler(socket, (text) => (received[index] += text));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        received,
        close: () => new Promise<void>((done) => server.close(() => done())),
      }),
    );
  });
}

function startPlainServer(handler: (socket: net.Socket, log: (text: string) => void) => void): Promise<MailServer> {
  const received: string[] = [];
  const server = net.createServer((socket) => {
    const index = received.push('') - 1;
    socket.on('error', () => undefined);
    handler(socket, (text) => (received[index] += text));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        received,
        close: () => new Promise<void>((done) => server.close(() => done())),
      }),
    );
  });
}

const POLICY = `rules:
  - name: mail-spliced
    match: [imap-splice.test, smtp-splice.test]
    action: splice
  - name: mail-inspected
    match: [imap.test, smtp.test, echo.test]
    action: inspect
    dlp:
      detectors: [aws_access_key_id]
      action: deny
  - name: mail-reported
    match: [imap-report.test]
    action: inspect
    dlp:
      detectors: [aws_access_key_id]
      action: log
  - name: cleartext-server-first
    match: imap-plain.test
    action: splice
    non_tls: splice
  - name: cleartext-server-first-inspected
    match: imap-plain-inspect.test
    action: inspect
    non_tls: splice
  - name: cleartext-default
    match: imap-plain-deny.test
    action: splice
  - name: streams-refused
    match: imap-denied.test
    action: inspect
    inspect_non_http: deny
`;

const NAMES = [
  'imap-plain.test',
  'imap-plain-inspect.test',
  'imap-plain-deny.test',
  'imap-splice.test',
  'smtp-splice.test',
  'imap.test',
  'smtp.test',
  'echo.test',
  'imap-report.test',
  'imap-denied.test',
];

describe('TLS that is not HTTP, through tunnels, with python3 imaplib/smtplib and openssl s_client', () => {
  let imap: MailServer;
  let smtp: MailServer;
  let echo: MailServer;
  let plainImap: MailServer;
  let originCa: string;
  let gw: TestGateway;
  let socksPort: number;

  beforeAll(async () => {
    const dir = tempDir('streams');
    const ca = issue({ commonName: 'mail test CA', isCa: true });
    const leaf = issue({ commonName: 'imap.test', dnsNames: NAMES, issuer: ca });
    originCa = writePem(dir, 'origin-ca.pem', ca.certPem);
    const cert = { cert: leaf.certPem + ca.certPem, key: leaf.keyPem };
    imap = await startTlsServer(cert, imapHandler);
    smtp = await startTlsServer(cert, smtpHandler);
    echo = await startTlsServer(cert, echoHandler, ['x-echo']);
    plainImap = await startPlainServer(imapHandler);
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  socks: 127.0.0.1:0',
      allowedPorts: { tunnel: [imap.port, smtp.port, echo.port, plainImap.port], http: [] },
      policies: { 'mail.yaml': POLICY },
      hostNames: NAMES,
      upstreamCaFile: originCa,
      extraConfig: 'limits:\n  server_first_wait: 200ms',
    });
    socksPort = gw.gateway.address('socks')!.port;
  });

  afterAll(async () => {
    await gw.stop();
    await imap.close();
    await smtp.close();
    await echo.close();
    await plainImap.close();
  });

  async function python(mode: 'connect' | 'socks', host: string, port: number, cafile: string, proto: 'imap' | 'imap-plain' | 'smtp', payload: string): Promise<Record<string, unknown>> {
    const proxyPort = mode === 'connect' ? gw.explicitPort : socksPort;
    const result = await run('python3', ['-c', PY_CLIENT, mode, String(proxyPort), host, String(port), cafile, proto, payload], { timeoutMs: 20_000 });
    expect(result.timedOut).toBe(false);
    const line = result.stdout.toString().trim().split('\n').at(-1) ?? '';
    expect(line).toMatch(/^\{/);
    return JSON.parse(line) as Record<string, unknown>;
  }

  async function record(frontend: string, target: string, count = 1): Promise<ConnectionRecord> {
    const list = await eventually(
      async () => (await gw.audit()).filter((r): r is ConnectionRecord => r.type === 'connection' && r.frontend === frontend && r.target === target),
      (l) => l.length >= count,
    );
    expect(list.length).toBeGreaterThanOrEqual(count);
    return list[count - 1]!;
  }

  test('IMAPS through CONNECT, spliced: the greeting arrives, APPEND works, with the origin certificate', async () => {
    const out = await python('connect', 'imap-splice.test', imap.port, originCa, 'imap', 'plain text');
    expect(out).toMatchObject({ login: 'OK', append: 'OK', logout: 'BYE' });
    expect(String(out.welcome)).toContain('test server ready');
    expect(await record('explicit-connect', `imap-splice.test:${imap.port}`)).toMatchObject({ action: 'splice', first_bytes: 'tls', sni: 'imap-splice.test' });
  });

  test('SMTPS through SOCKS, spliced', async () => {
    const out = await python('socks', 'smtp-splice.test', smtp.port, originCa, 'smtp', 'plain text');
    expect(out).toMatchObject({ ehlo: 250, sent: true, quit: 221 });
    expect(await record('socks', `smtp-splice.test:${smtp.port}`)).toMatchObject({ action: 'splice', first_bytes: 'tls' });
  });

  test('IMAPS through SOCKS, inspected: the silent client gets the origin greeting, relayed decrypted, protocol imap', async () => {
    const out = await python('socks', 'imap.test', imap.port, gw.caFile, 'imap', 'nothing secret here');
    expect(out).toMatchObject({ login: 'OK', append: 'OK', logout: 'BYE' });
    expect(String(out.welcome)).toContain('test server ready');
    expect(imap.received.at(-1)).toContain('nothing secret here');
    const r = await record('socks', `imap.test:${imap.port}`);
    expect(r).toMatchObject({ action: 'inspect', first_bytes: 'tls', protocol: 'imap', dlp: [], error: null });
    expect(r.stream_bytes_from_client).toBeGreaterThan(0);
    expect(r.stream_bytes_to_client).toBeGreaterThan(0);
    expect(r.requests).toBe(0);
  });

  test('SMTPS through CONNECT, inspected: protocol smtp, the message delivered', async () => {
    const out = await python('connect', 'smtp.test', smtp.port, gw.caFile, 'smtp', 'hello there');
    expect(out).toMatchObject({ ehlo: 250, sent: true, quit: 221 });
    expect(smtp.received.at(-1)).toContain('hello there');
    expect(await record('explicit-connect', `smtp.test:${smtp.port}`)).toMatchObject({ action: 'inspect', protocol: 'smtp', error: null });
  });

  test('an AWS key id in an IMAP APPEND is cut (dlp deny): the origin never gets it whole, the record says so', async () => {
    const before = imap.received.length;
    const out = await python('connect', 'imap.test', imap.port, gw.caFile, 'imap', `key ${AWS_KEY} here`);
    expect(out.error).toBeDefined();
    expect(out.append).toBeUndefined();
    expect(imap.received.slice(before).join('')).not.toContain(AWS_KEY);
    const r = await record('explicit-connect', `imap.test:${imap.port}`);
    expect(r).toMatchObject({ action: 'inspect', protocol: 'imap', dlp: [{ detector: 'aws_access_key_id', direction: 'client-to-origin', action: 'deny' }] });
    expect(r.error).toMatch(/^TG_ERR_DLP_BLOCKED: stream cut: aws_access_key_id/);
  });

  test('an AWS key id in SMTP DATA through SOCKS is cut too', async () => {
    const before = smtp.received.length;
    const out = await python('socks', 'smtp.test', smtp.port, gw.caFile, 'smtp', `key ${AWS_KEY} here`);
    expect(out.error).toBeDefined();
    expect(out.sent).toBeUndefined();
    expect(smtp.received.slice(before).join('')).not.toContain(AWS_KEY);
    const r = await record('socks', `smtp.test:${smtp.port}`);
    expect(r.dlp).toEqual([expect.objectContaining({ detector: 'aws_access_key_id', direction: 'client-to-origin', action: 'deny' })]);
    expect(r.error).toMatch(/^TG_ERR_DLP_BLOCKED/);
  });

  test('dlp action log: the key is reported and the mail still goes through', async () => {
    const out = await python('socks', 'imap-report.test', imap.port, gw.caFile, 'imap', `key ${AWS_KEY} here`);
    expect(out).toMatchObject({ append: 'OK', logout: 'BYE' });
    const r = await record('socks', `imap-report.test:${imap.port}`);
    expect(r.dlp).toEqual([expect.objectContaining({ detector: 'aws_access_key_id', action: 'log' })]);
    expect(r.error).toBeNull();
  });

  test('inspect_non_http: deny closes a decrypted stream that is not HTTP, and the record says why', async () => {
    const before = imap.received.length;
    const out = await python('connect', 'imap-denied.test', imap.port, gw.caFile, 'imap', 'x');
    expect(out.error).toBeDefined();
    // The origin may see a connection opened ahead for HTTP, but never a byte of the stream.
    expect(imap.received.slice(before).join('')).toBe('');
    const r = await record('explicit-connect', `imap-denied.test:${imap.port}`);
    expect(r).toMatchObject({ action: 'deny', rule: 'streams-refused', close: 'refused' });
    expect(r.reason).toMatch(/inspect_non_http: deny/);
  });

  test('openssl s_client -proxy, a client-first TLS service, inspected: relayed decrypted both ways', async () => {
    const result = await run(
      'openssl',
      ['s_client', '-proxy', `127.0.0.1:${gw.explicitPort}`, '-connect', `echo.test:${echo.port}`, '-servername', 'echo.test', '-CAfile', gw.caFile, '-verify_return_error', '-quiet'],
      {
        input: 'ping one\n',
        timeoutMs: 10_000,
      },
    );
    expect(result.stdout.toString()).toContain('echo: ping one');
    const r = await record('explicit-connect', `echo.test:${echo.port}`);
    expect(r).toMatchObject({ action: 'inspect', protocol: 'unknown' });
    expect(r.stream_bytes_to_client).toBe('echo: ping one\n'.length);
  });

  test('openssl s_client -alpn x-echo: the origin picks the protocol, the record names it', async () => {
    const result = await run(
      'openssl',
      [
        's_client',
        '-proxy',
        `127.0.0.1:${gw.explicitPort}`,
        '-connect',
        `echo.test:${echo.port}`,
        '-servername',
        'echo.test',
        '-alpn',
        'x-echo',
        '-CAfile',
        gw.caFile,
        '-verify_return_error',
        '-quiet',
      ],
      {
        input: 'ping two\n',
        timeoutMs: 10_000,
      },
    );
    expect(result.stdout.toString()).toContain('echo: ping two');
    const r = await record('explicit-connect', `echo.test:${echo.port}`, 2);
    expect(r).toMatchObject({ action: 'inspect', protocol: 'x-echo', alpn: ['x-echo'] });
  });

  test('cleartext IMAP (server-first) through SOCKS, spliced with non_tls: splice: the greeting reaches the silent client', async () => {
    const out = await python('socks', 'imap-plain.test', plainImap.port, gw.caFile, 'imap-plain', 'cleartext mail');
    expect(out).toMatchObject({ login: 'OK', append: 'OK', logout: 'BYE' });
    expect(String(out.welcome)).toContain('test server ready');
    expect(await record('socks', `imap-plain.test:${plainImap.port}`)).toMatchObject({ action: 'splice', first_bytes: 'none', rule: 'cleartext-server-first' });
  });

  test('... through CONNECT to an inspected name with non_tls: splice: the origin is dialled after server_first_wait', async () => {
    const out = await python('connect', 'imap-plain-inspect.test', plainImap.port, gw.caFile, 'imap-plain', 'cleartext mail');
    expect(out).toMatchObject({ login: 'OK', append: 'OK', logout: 'BYE' });
    expect(await record('explicit-connect', `imap-plain-inspect.test:${plainImap.port}`)).toMatchObject({ action: 'inspect', first_bytes: 'none' });
  });

  test('... and refused under the default non_tls: deny, the greeting never relayed', async () => {
    const out = await python('socks', 'imap-plain-deny.test', plainImap.port, gw.caFile, 'imap-plain', 'x');
    expect(out.error).toBeDefined();
    expect(out.welcome).toBeUndefined();
    const r = await record('socks', `imap-plain-deny.test:${plainImap.port}`);
    expect(r).toMatchObject({ action: 'deny', first_bytes: 'none', close: 'refused' });
    expect(r.reason).toMatch(/origin spoke first.*non_tls: deny/);
  });
});
