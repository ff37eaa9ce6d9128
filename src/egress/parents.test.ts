import { mkdtempSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { GatewayError } from '../errors/gateway-error';
import { ConfigError } from '../sources/config-error';
import { connectThrough, isParentRefusal, loadParents, ParentHealth, type ParentDefinition, type ParentProxy } from './parents';

const url = { tls: false, host: '127.0.0.1', port: 3128, text: 'http://127.0.0.1:3128' };
const definition = (extra: Partial<ParentDefinition> = {}): ParentDefinition => ({ url, credentialsFile: null, credentialsEnv: null, ...extra });

describe('loadParents: credentials from a file or the environment, never shown', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-parents-'));

  test('a credentials file becomes a Basic Proxy-Authorization (trailing newline dropped)', () => {
    const file = path.join(dir, 'good');
    writeFileSync(file, 'gateway:pa:ss\n');
    const parent = loadParents({ corp: definition({ credentialsFile: file }) }, 'tollgate.yaml').get('corp')!;
    expect(parent.authorization).toBe(`Basic ${Buffer.from('gateway:pa:ss').toString('base64')}`);
    expect(parent.url).toBe('http://127.0.0.1:3128');
  });

  test('an environment variable works the same way; no credentials means none', () => {
    const parents = loadParents({ a: definition({ credentialsEnv: 'PARENT_CREDS' }), b: definition() }, 'tollgate.yaml', { PARENT_CREDS: 'u:p' });
    expect(parents.get('a')!.authorization).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    expect(parents.get('b')!.authorization).toBeNull();
  });

  test('problems name the key and the fix, and never the value', () => {
    const bad = path.join(dir, 'bad');
    writeFileSync(bad, 'no-colon-secret\n');
    const cases: [ParentDefinition, NodeJS.ProcessEnv, RegExp][] = [
      [definition({ credentialsFile: path.join(dir, 'missing') }), {}, /upstream\.parents\.corp\.credentials_file: cannot read .*missing \(ENOENT\); it must hold user:password/],
      [definition({ credentialsEnv: 'UNSET_VAR' }), {}, /upstream\.parents\.corp\.credentials_env: the environment variable UNSET_VAR is not set/],
      [definition({ credentialsFile: bad }), {}, /upstream\.parents\.corp\.credentials_file: expected one line user:password \(the value is not shown\)/],
    ];
    for (const [def, env, message] of cases) {
      let error: unknown = null;
      try {
        loadParents({ corp: def }, 'tollgate.yaml', env);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain('no-colon-secret');
    }
  });
});

describe('connectThrough: the CONNECT exchange with a parent, over a real loopback socket', () => {
  const parent: ParentProxy = { name: 'corp', host: '127.0.0.1', port: 0, tls: false, url: 'http://127.0.0.1:3128', authorization: 'Basic Z2F0ZXdheTpz' };
  const target = { host: { kind: 'name' as const, name: 'origin.example' }, port: 443 };

  /** A parent that answers the first request head with `answer`, recording what it received. */
  async function withParent(answer: string, run: (socket: net.Socket, received: () => string) => Promise<void>): Promise<void> {
    let received = '';
    const accepted = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      accepted.add(socket);
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('latin1');
        if (received.includes('\r\n\r\n') && answer !== '') {
          if (answer === 'close') socket.end();
          else socket.write(answer);
          answer = '';
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    try {
      await run(socket, () => received);
    } finally {
      socket.destroy();
      for (const s of accepted) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  const failure = async (promise: Promise<void>): Promise<GatewayError> => {
    try {
      await promise;
    } catch (err) {
      return err as GatewayError;
    }
    throw new Error('expected a failure');
  };

  test('a 200 opens the tunnel: the request carried the credentials, bytes after the head stay readable', async () => {
    await withParent('HTTP/1.1 200 Connection established\r\n\r\nSERVER-FIRST', async (socket, received) => {
      await connectThrough(socket, parent, target);
      expect(received()).toBe('CONNECT origin.example:443 HTTP/1.1\r\nHost: origin.example:443\r\nProxy-Authorization: Basic Z2F0ZXdheTpz\r\n\r\n');
      // The tunnel is handed over paused; whoever takes it resumes it.
      const first = new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString())));
      socket.resume();
      expect(await first).toBe('SERVER-FIRST');
    });
  });

  test("a 407 is the parent's refusal, named with its answer (never passed on as a 407)", async () => {
    await withParent('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\nX-Squid-Error: ERR_CACHE_ACCESS_DENIED 0\r\n\r\n', async (socket) => {
      const error = await failure(connectThrough(socket, parent, target));
      expect(error.code).toBe('TG_ERR_PARENT_REFUSED');
      expect(error.message).toBe('parent proxy corp (http://127.0.0.1:3128) answered 407 Proxy Authentication Required (ERR_CACHE_ACCESS_DENIED 0) to CONNECT origin.example:443');
      expect(socket.destroyed).toBe(true);
    });
  });

  test('an answer that is not HTTP, and a parent that closes without answering', async () => {
    await withParent('SSH-2.0-OpenSSH\r\n\r\n', async (socket) => {
      const error = await failure(connectThrough(socket, parent, target));
      expect(error.code).toBe('TG_ERR_PARENT_REFUSED');
      expect(error.message).toMatch(/answered something that is not HTTP \("SSH-2\.0-OpenSSH"\)/);
    });
    await withParent('close', async (socket) => {
      const error = await failure(connectThrough(socket, parent, target));
      expect(error.code).toBe('TG_ERR_PARENT_UNREACHABLE');
      expect(error.message).toMatch(/closed the connection without answering CONNECT origin\.example:443/);
    });
  });
});

describe('isParentRefusal: which answers to a plain request are the parent’s own', () => {
  test.each([
    [407, {}, true],
    [403, { 'x-squid-error': 'ERR_ACCESS_DENIED 0' }, true],
    [502, { 'proxy-status': 'corp; error=dns_error' }, true],
    // The origin's own answers pass through unchanged.
    [403, {}, false],
    [404, { 'x-squid-error': 'x' }, true],
    [200, { 'x-squid-error': 'x' }, false],
    [503, { 'proxy-status': 'corp; received-status=503' }, false],
  ])('%i %j -> %s', (status, headers, expected) => {
    expect(isParentRefusal(status, headers)).toBe(expected);
  });
});

describe('ParentHealth: parents seen down recently are tried last', () => {
  test('order, and recovery after the window', () => {
    const health = new ParentHealth(1000);
    health.markDown('a', 0);
    expect(health.order(['a', 'b', 'c'], 500)).toEqual(['b', 'c', 'a']);
    expect(health.order(['a', 'b'], 1500)).toEqual(['a', 'b']);
    health.markDown('b', 2000);
    health.markUp('b');
    expect(health.order(['a', 'b'], 2100)).toEqual(['a', 'b']);
  });
});
