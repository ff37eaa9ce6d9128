import { execFile } from 'node:child_process';
import net from 'node:net';
import type { SocksParseResult } from './socks-wire';
import { encodeSocks4Reply, parseSocks4Request } from './socks4-codec';
import { encodeSocks5AuthStatus, encodeSocks5MethodSelection, encodeSocks5Reply, parseSocks5Greeting, parseSocks5Request, parseSocks5UserPass } from './socks5-codec';

// The same messages from the curl on this machine, if there is one: a loopback server runs the
// handshake with these parsers and records what it parsed.

interface Capture {
  readonly greeting?: SocksParseResult<unknown>;
  readonly credentials?: SocksParseResult<unknown>;
  readonly request?: SocksParseResult<unknown>;
}

const CURL_TIMEOUT_MS = 8000;

function isCurlAvailable(): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('curl', ['--version'], { timeout: CURL_TIMEOUT_MS }, (error) => resolve(error === null));
  });
}

/** Answers one connection as a minimal server would, refusing the request once it has it. */
function serveOnce(socket: net.Socket, version: 4 | 5, record: (capture: Capture) => void): void {
  let buffered = Buffer.alloc(0);
  let step: 'greeting' | 'credentials' | 'request' | 'done' = version === 5 ? 'greeting' : 'request';
  const capture: { greeting?: SocksParseResult<unknown>; credentials?: SocksParseResult<unknown>; request?: SocksParseResult<unknown> } = {};
  const advance = (consumed: number): void => {
    buffered = buffered.subarray(consumed);
  };
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    if (step === 'greeting') {
      const greeting = parseSocks5Greeting(buffered);
      if (greeting.kind === 'needMore') return;
      capture.greeting = greeting;
      if (greeting.kind === 'invalid') return void socket.destroy();
      advance(greeting.consumed);
      const useCredentials = greeting.value.methods.includes(0x02);
      socket.write(encodeSocks5MethodSelection(useCredentials ? 0x02 : 0x00));
      step = useCredentials ? 'credentials' : 'request';
    }
    if (step === 'credentials') {
      const credentials = parseSocks5UserPass(buffered);
      if (credentials.kind === 'needMore') return;
      capture.credentials = credentials;
      if (credentials.kind === 'invalid') return void socket.destroy();
      advance(credentials.consumed);
      socket.write(encodeSocks5AuthStatus(true));
      step = 'request';
    }
    if (step === 'request') {
      const request = version === 5 ? parseSocks5Request(buffered) : parseSocks4Request(buffered);
      if (request.kind === 'needMore') return;
      capture.request = request;
      step = 'done';
      record(capture);
      socket.end(version === 5 ? encodeSocks5Reply(0x02) : encodeSocks4Reply(0x5b));
    }
  });
}

function withoutProxyEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (/_proxy$/i.test(name)) delete env[name];
  return env;
}

async function captureCurl(version: 4 | 5, curlArgs: (proxy: string) => readonly string[]): Promise<Capture> {
  let captured: Capture = {};
  const server = net.createServer((socket) => serveOnce(socket, version, (capture) => (captured = capture)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const proxy = typeof address === 'object' && address !== null ? `127.0.0.1:${address.port}` : '';
  try {
    await new Promise<void>((resolve) => {
      execFile('curl', ['-q', '-sS', '--max-time', '5', ...curlArgs(proxy)], { timeout: CURL_TIMEOUT_MS, env: withoutProxyEnvironment() }, () => resolve());
    });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return captured;
}

describe('live curl transcripts', () => {
  let curl = false;
  beforeAll(async () => {
    curl = await isCurlAvailable();
  });

  const cases: ReadonlyArray<{
    readonly name: string;
    readonly version: 4 | 5;
    readonly args: (proxy: string) => readonly string[];
    readonly expected: Capture;
  }> = [
    {
      name: 'curl --socks5 to an IPv4 address',
      version: 5,
      args: (proxy) => ['--socks5', proxy, 'http://192.0.2.1:8080/'],
      expected: { request: { kind: 'parsed', value: { command: 'connect', target: { kind: 'ipv4', address: '192.0.2.1', port: 8080 } }, consumed: 10 } },
    },
    {
      name: 'curl --socks5 to an IPv6 address',
      version: 5,
      args: (proxy) => ['--socks5', proxy, 'http://[2001:db8:0:0:1:0:0:1]:8080/'],
      expected: { request: { kind: 'parsed', value: { command: 'connect', target: { kind: 'ipv6', address: '2001:db8::1:0:0:1', port: 8080 } }, consumed: 22 } },
    },
    {
      name: 'curl --socks5-hostname',
      version: 5,
      args: (proxy) => ['--socks5-hostname', proxy, 'http://example.test:8080/'],
      expected: { request: { kind: 'parsed', value: { command: 'connect', target: { kind: 'domain', name: 'example.test', port: 8080 } }, consumed: 19 } },
    },
    {
      name: 'curl --socks5 --proxy-user u:p',
      version: 5,
      args: (proxy) => ['--socks5', proxy, '--proxy-user', 'u:p', 'http://192.0.2.1:8080/'],
      expected: {
        credentials: { kind: 'parsed', value: { username: 'u', password: 'p' }, consumed: 5 },
        request: { kind: 'parsed', value: { command: 'connect', target: { kind: 'ipv4', address: '192.0.2.1', port: 8080 } }, consumed: 10 },
      },
    },
    {
      name: 'curl --socks4',
      version: 4,
      args: (proxy) => ['--socks4', proxy, 'http://192.0.2.1:8080/'],
      expected: {
        request: {
          kind: 'parsed',
          value: { command: 'connect', target: { kind: 'ipv4', address: '192.0.2.1', port: 8080 }, userId: '', isSocks4a: false },
          consumed: 9,
        },
      },
    },
    {
      name: 'curl --socks4a',
      version: 4,
      args: (proxy) => ['--socks4a', proxy, 'http://example.test:8080/'],
      expected: {
        request: {
          kind: 'parsed',
          value: { command: 'connect', target: { kind: 'domain', name: 'example.test', port: 8080 }, userId: '', isSocks4a: true },
          consumed: 22,
        },
      },
    },
  ];

  it.each(cases)(
    '$name',
    async ({ version, args, expected }) => {
      if (!curl) return; // No curl here: the recorded transcripts above still cover these bytes.
      const captured = await captureCurl(version, args);
      expect(captured).toMatchObject(expected);
      if (version === 5) expect(captured.greeting).toMatchObject({ kind: 'parsed', value: { methods: expect.arrayContaining([0x00]) } });
    },
    20000,
  );
});
