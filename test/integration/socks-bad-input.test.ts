import fc from 'fast-check';
import net from 'node:net';
import type { ConnectionRecord } from '../../src/audit/record-fields';
import { subscribe } from '../../src/observability/events';
import { captureClientHello } from './support/client-hello';
import { eventually, type SocksTestGateway, startSocksTestGateway } from './support/gateway';
import { curl } from './support/run';
import { startTestOrigins, type TestOrigins } from './support/test-origins';
import { staticAuthenticator } from './support/users';

/**
 * Raw SOCKS transcripts: bytes in, exact bytes out, then the connection's fate. Each step
 * writes its bytes and waits for `expect` bytes (or the close) within a bounded time.
 */
interface Exchange {
  /** Every byte the gateway sent, in order. */
  readonly received: Buffer;
  /** Whether the gateway closed the connection before the deadline. */
  readonly closed: boolean;
  /** Milliseconds from connect to close (or to the deadline). */
  readonly elapsedMs: number;
}

function transcript(port: number, steps: readonly (Buffer | { waitMs: number } | 'end')[], deadlineMs = 3000): Promise<Exchange> {
  return new Promise((resolve) => {
    const started = Date.now();
    const chunks: Buffer[] = [];
    let closed = false;
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    const timer = setTimeout(() => finish(), deadlineMs);
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closed, elapsedMs: Date.now() - started });
    };
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('connect', async () => {
      for (const step of steps) {
        if (step === 'end') {
          socket.end();
        } else if (Buffer.isBuffer(step)) {
          if (!socket.writable) return;
          socket.write(step);
        } else {
          await new Promise((r) => setTimeout(r, step.waitMs));
        }
      }
    });
  });
}

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const GREETING_NO_AUTH = hex('05 01 00');
const METHOD_NO_AUTH = hex('05 00');
/** A SOCKS5 reply with BND 0.0.0.0:0. */
const s5Reply = (code: number): Buffer => Buffer.concat([Buffer.from([0x05, code, 0x00, 0x01]), Buffer.alloc(6)]);
const s4Reply = (code: number): Buffer => Buffer.concat([Buffer.from([0x00, code]), Buffer.alloc(6)]);
function s5Connect(name: string, port: number, command = 0x01): Buffer {
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([0x05, command, 0x00, 0x03, name.length]), Buffer.from(name, 'latin1'), portBytes]);
}

describe('SOCKS bad input: exact replies, a log line, and the process stays up', () => {
  let origins: TestOrigins;
  let gw: SocksTestGateway;
  let port: number;
  let tlsPort: number;

  beforeAll(async () => {
    origins = await startTestOrigins();
    tlsPort = origins.tls.port;
    gw = await startSocksTestGateway({
      allowedPorts: { tunnel: [tlsPort], http: [80] },
      policies: {
        'p.yaml': 'rules:\n  - match: [origin.test, refused.test, nowhere.test, 10.0.0.0/8]\n    action: splice\n  - match: denied.test\n    action: deny\n',
      },
      upstreamSection: [
        'upstream:',
        '  hosts:',
        '    origin.test: 127.0.0.1',
        '    denied.test: 127.0.0.1',
        // 127.0.0.2 listens on nothing: connection refused.
        '    refused.test: 127.0.0.2',
        '  allow_addresses: [127.0.0.0/8]',
        `  ca_file: ${origins.originCaFile}`,
      ].join('\n'),
      // Names not in upstream.hosts go to a nameserver that is not there: a DNS failure.
      dnsServers: ['127.0.0.1:9'],
      extraConfig: 'limits:\n  socks_handshake_timeout: 600ms',
    });
    port = gw.socksPort;
  });

  afterAll(async () => {
    await gw.stop();
    await origins.close();
  });

  function logged(pattern: RegExp): boolean {
    return gw.logs().some((line) => pattern.test(`${String(line.msg)} ${String(line.reason ?? '')}`));
  }

  test('an unknown version byte (an HTTP request) is closed without a reply', async () => {
    const result = await transcript(port, [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]);
    expect(result.received.length).toBe(0);
    expect(result.closed).toBe(true);
    expect(logged(/SOCKS handshake refused unknown SOCKS version byte 0x47/)).toBe(true);
  });

  test('a SOCKS5 greeting with no methods is closed without a reply', async () => {
    const result = await transcript(port, [hex('05 00')]);
    expect(result.received.length).toBe(0);
    expect(result.closed).toBe(true);
    expect(logged(/NMETHODS 0/)).toBe(true);
  });

  test('a greeting offering only GSSAPI gets "no acceptable methods" (0xFF)', async () => {
    const result = await transcript(port, [hex('05 01 01')]);
    expect(result.received).toEqual(hex('05 ff'));
    expect(result.closed).toBe(true);
  });

  test('a truncated request followed by a close is logged and recorded', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, hex('05 01 00 03 0b 6f 72'), { waitMs: 50 }, 'end']);
    expect(result.received).toEqual(METHOD_NO_AUTH);
    expect(result.closed).toBe(true);
    expect(result.elapsedMs).toBeLessThan(500);
    await eventually(
      () => logged(/SOCKS client closed during the handshake/),
      (v) => v,
      2000,
    );
  });

  test('BIND to a destination whose rule does not say socks_bind: true is "not allowed by ruleset" (0x02)', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, s5Connect('origin.test', tlsPort, 0x02)]);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x02)]));
    expect(result.closed).toBe(true);
    expect(logged(/SOCKS5 BIND refused SOCKS5 BIND to origin\.test is off/)).toBe(true);
  });

  test('an unknown command is answered "command not supported" (0x07)', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, s5Connect('origin.test', tlsPort, 0x09)]);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x07)]));
    expect(result.closed).toBe(true);
    expect(logged(/SOCKS5 command 0x09 is not supported/)).toBe(true);
  });

  test('UDP ASSOCIATE succeeds with a relay port on the listener address (test/integration/socks-udp.test.ts goes further)', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, hex('05 03 00 01 00 00 00 00 00 00'), { waitMs: 100 }, 'end']);
    expect(result.received.subarray(0, 8)).toEqual(Buffer.concat([METHOD_NO_AUTH, hex('05 00 00 01 7f 00')]));
    expect(result.received.subarray(8, 10)).toEqual(hex('00 01'));
    expect(result.received.readUInt16BE(10)).toBeGreaterThan(0);
    expect(result.closed).toBe(true);
  });

  test('an unknown address type is answered "address type not supported" (0x08)', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, hex('05 01 00 05 01 02 03 04 01 bb')]);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x08)]));
    expect(result.closed).toBe(true);
  });

  test('a domain name of length 0 is a general failure (0x01)', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, hex('05 01 00 03 00 01 bb')]);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x01)]));
    expect(logged(/empty domain name/)).toBe(true);
  });

  test('port 0 is a general failure (0x01)', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, s5Connect('origin.test', 0)]);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x01)]));
    expect(logged(/destination port 0/)).toBe(true);
  });

  test('a nonzero reserved byte is a general failure (0x01)', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, hex('05 01 01 01 7f 00 00 01 01 bb')]);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x01)]));
  });

  test('a name that is not a valid host name is refused (0x08, bad target)', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, s5Connect('a..b', tlsPort)]);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x08)]));
  });

  test('a policy deny is 0x02', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, s5Connect('denied.test', tlsPort)]);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x02)]));
  });

  test('an IPv6 destination is decided as an address (no rule: default deny, 0x02)', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, hex('05 01 00 04 2001 0db8 0000 0000 0000 0000 0000 0001 01bb')]);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x02)]));
    const records = await eventually(
      async () => (await gw.audit()).filter((r): r is ConnectionRecord => r.type === 'connection' && r.target === '[2001:db8::1]:443'),
      (l) => l.length === 1,
    );
    expect(records[0]).toMatchObject({ frontend: 'socks', action: 'deny', decision_code: 'default' });
  });

  test('an IPv4-mapped IPv6 destination is decided as the IPv4 address it carries', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, hex(`05 01 00 04 0000 0000 0000 0000 0000 ffff 0a00 0002 ${tlsPort.toString(16).padStart(4, '0')}`)]);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x02)]));
    const records = await eventually(
      async () => (await gw.audit()).filter((r): r is ConnectionRecord => r.type === 'connection' && r.target === `10.0.0.2:${tlsPort}`),
      (l) => l.length === 1,
    );
    // 10.0.0.0/8 is spliced by policy; the guard then refuses the internal address.
    expect(records[0]!.error).toMatch(/TG_ERR_DESTINATION_FORBIDDEN/);
  });

  test('a port not allowed is a policy deny, 0x02', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, s5Connect('origin.test', 25)]);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x02)]));
  });

  test('an internal address the guard forbids is 0x02', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, hex(`05 01 00 01 0a 00 00 01 ${tlsPort.toString(16).padStart(4, '0')}`)]);
    // Policy splices 10.0.0.0/8, but upstream.allow_addresses does not admit it.
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x02)]));
    expect(gw.logs().some((l) => l.msg === 'tunnel refused' && /10\.0\.0\.1/.test(String(l.reason)))).toBe(true);
  });

  test('connection refused by the origin is 0x05', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, s5Connect('refused.test', tlsPort)]);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x05)]));
  });

  test('a name that does not resolve is "host unreachable" (0x04)', async () => {
    const result = await transcript(port, [GREETING_NO_AUTH, s5Connect('nowhere.test', tlsPort)], 15_000);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x04)]));
  });

  test('greeting, request and ClientHello sent at once: nothing is lost, the origin answers', async () => {
    const hello = await captureClientHello('origin.test');
    const result = await transcript(port, [Buffer.concat([GREETING_NO_AUTH, s5Connect('origin.test', tlsPort), hello])], 1500);
    const expected = Buffer.concat([METHOD_NO_AUTH, s5Reply(0x00)]);
    expect(result.received.subarray(0, expected.length)).toEqual(expected);
    // A TLS handshake record from the origin: the pipelined ClientHello reached it intact.
    expect(result.received[expected.length]).toBe(0x16);
  });

  test('SOCKS4 BIND is rejected with 0x5B', async () => {
    const result = await transcript(port, [hex(`04 02 ${tlsPort.toString(16).padStart(4, '0')} 7f 00 00 01 00`)]);
    expect(result.received).toEqual(s4Reply(0x5b));
    expect(result.closed).toBe(true);
  });

  test('SOCKS4 with a USERID that never ends is rejected with 0x5B', async () => {
    const result = await transcript(port, [Buffer.concat([hex('04 01 01 bb 7f 00 00 01'), Buffer.alloc(300, 0x61)])]);
    expect(result.received).toEqual(s4Reply(0x5b));
  });

  test('a stalled request is answered "TTL expired" (0x06) at socks_handshake_timeout', async () => {
    const breached: string[] = [];
    const unsubscribe = subscribe('tollgate:limit:breached', (m) => breached.push(`${m.frontend}:${m.limit}`));
    const result = await transcript(port, [GREETING_NO_AUTH, hex('05 01 00 03')], 5000).finally(unsubscribe);
    expect(breached).toEqual(['socks:socks_handshake_timeout']);
    expect(result.received).toEqual(Buffer.concat([METHOD_NO_AUTH, s5Reply(0x06)]));
    expect(result.closed).toBe(true);
    expect(result.elapsedMs).toBeGreaterThanOrEqual(500);
    expect(result.elapsedMs).toBeLessThan(3000);
    expect(logged(/SOCKS handshake timed out/)).toBe(true);
    expect(logged(/limit reached: limits.socks_handshake_timeout/)).toBe(true);
  });

  test('a client that sends nothing is closed at socks_handshake_timeout', async () => {
    const result = await transcript(port, [], 5000);
    expect(result.received.length).toBe(0);
    expect(result.closed).toBe(true);
    expect(result.elapsedMs).toBeLessThan(3000);
    const records = (await gw.audit()).filter((r): r is ConnectionRecord => r.type === 'connection' && r.close === 'timeout');
    expect(records.length).toBeGreaterThanOrEqual(2);
  });

  test('property: random bytes (often SOCKS-shaped) always end in a close, never in a granted tunnel', async () => {
    // Versions 4 and 5 are forced on most cases so the bytes get past the version check.
    const handshake = fc.tuple(fc.constantFrom<number | null>(0x04, 0x05, 0x05, null), fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([version, body]) => {
      const bytes = Buffer.from(body);
      if (version !== null) bytes[0] = version;
      return bytes;
    });
    await fc.assert(
      fc.asyncProperty(handshake, async (bytes) => {
        const result = await transcript(port, [bytes], 2000);
        // Every handshake ends: a reply and close, or at worst the handshake timeout.
        expect(result.closed).toBe(true);
        const reply = result.received;
        if (bytes[0] === 0x04) {
          expect(reply.length === 0 || (reply.length === 8 && reply[0] === 0x00 && reply[1] === 0x5b)).toBe(true);
        } else if (bytes[0] === 0x05) {
          // A method selection (no authentication or none acceptable), then at most one failure reply.
          if (reply.length > 0) expect([0x00, 0xff]).toContain(reply[1]);
          if (reply.length > 2) expect(reply[3]).not.toBe(0x00);
        } else {
          expect(reply.length).toBe(0);
        }
      }),
      { numRuns: 20, seed: 20261201 },
    );
    const res = await curl(['--socks5-hostname', `127.0.0.1:${port}`, '--cacert', origins.originCaFile, `https://origin.test:${tlsPort}/hello`]);
    expect(res.status).toBe(200);
  });
});

describe('SOCKS5 authentication bad input', () => {
  let gw: SocksTestGateway;
  let port: number;

  beforeAll(async () => {
    gw = await startSocksTestGateway({
      policies: { 'p.yaml': 'rules:\n  - match: origin.test\n    action: splice\n' },
      authenticator: staticAuthenticator({ alice: { password: 'right' } }),
    });
    port = gw.socksPort;
  });

  afterAll(() => gw.stop());

  test('a wrong password: method 0x02, status 0x01, then close', async () => {
    const result = await transcript(port, [hex('05 02 00 02'), hex('01 05'), Buffer.from('alice'), hex('05'), Buffer.from('wrong')]);
    expect(result.received).toEqual(hex('05 02 01 01'));
    expect(result.closed).toBe(true);
  });

  test('a malformed subnegotiation version: status 0x01, then close', async () => {
    const result = await transcript(port, [hex('05 01 02'), hex('02 01 61 01 62')]);
    expect(result.received).toEqual(hex('05 02 01 01'));
    expect(result.closed).toBe(true);
  });

  test('the right password then a request: success path reaches the policy (deny here, 0x02)', async () => {
    const result = await transcript(port, [hex('05 01 02'), hex('01 05'), Buffer.from('alice'), hex('05'), Buffer.from('right'), s5Connect('elsewhere.test', 443)]);
    expect(result.received).toEqual(Buffer.concat([hex('05 02 01 00'), s5Reply(0x02)]));
  });
});
