import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { GatewayError } from '../errors/gateway-error';
import { silentLogger } from '../logging/logger';
import { loadOrCreateAuthority, type CertificateAuthority } from './ca';
import { LeafKeyPool } from './key-pool';
import { LeafCache, type LeafCacheOptions } from './leaf-cache';
import { runProcess, within } from './testdata/harness';

const DAY = 24 * 3600_000;

let dir: string;
let authority: CertificateAuthority;
let caPath: string;
let otherAuthority: CertificateAuthority;
let keys: LeafKeyPool;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tollgate-cache-'));
  caPath = join(dir, 'ca.pem');
  ({ authority } = await loadOrCreateAuthority({ certPath: caPath, keyPath: join(dir, 'ca.key'), logger: silentLogger() }));
  ({ authority: otherAuthority } = await loadOrCreateAuthority({
    certPath: join(dir, 'other.pem'),
    keyPath: join(dir, 'other.key'),
    logger: silentLogger(),
  }));
  keys = await LeafKeyPool.create({ size: 2, logger: silentLogger(), caSpkiDer: authority.spkiDer });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function newCache(overrides: Partial<LeafCacheOptions> = {}): { cache: LeafCache; mints: string[] } {
  const mints: string[] = [];
  const cache = new LeafCache({ authority, keys, logger: silentLogger(), onMint: (name) => mints.push(name), ...overrides });
  return { cache, mints };
}

function caughtBy(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (err: unknown) => err,
  );
}

describe('LeafCache', () => {
  test('concurrent gets for one new name mint once', async () => {
    const { cache, mints } = newCache();
    const spellings = ['www.example.com', 'WWW.Example.com', 'www.example.com.'];
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => cache.get({ kind: 'dns', name: spellings[i % 3]! })));
    expect(mints).toEqual(['www.example.com']);
    expect(new Set(results).size).toBe(1);
    expect(cache.size).toBe(1);
    const hit = cache.get({ kind: 'dns', name: 'www.example.com' });
    expect(await hit).toBe(results[0]);
    expect(mints).toHaveLength(1);
  });

  test('distinct names get distinct certificates with distinct serials', async () => {
    const { cache, mints } = newCache();
    const names = Array.from({ length: 20 }, (_, i) => `host${i}.example.net`);
    const contexts = await Promise.all(names.map((name) => cache.get({ kind: 'dns', name })));
    expect(mints).toHaveLength(20);
    expect(new Set(contexts.map((c) => c.leaf.serialHex)).size).toBe(20);
    contexts.forEach((context, i) => {
      expect(new X509Certificate(context.leaf.certDer).checkHost(names[i]!)).toBe(names[i]);
    });
    const ip = await cache.get({ kind: 'ip', address: '2001:db8::1' });
    expect(new X509Certificate(ip.leaf.certDer).checkIP('2001:db8::1')).toBe('2001:db8::1');
    expect(await cache.get({ kind: 'dns', name: '[2001:DB8:0::1]' })).toBe(ip);
  });

  test('re-mints once less than refreshBeforeMs of validity remains', async () => {
    let now = Date.now();
    const { cache, mints } = newCache({ clock: () => now, validityMs: 3 * DAY, refreshBeforeMs: DAY });
    const first = await cache.get({ kind: 'dns', name: 'long-lived.example' });
    expect(first.mintedAt).toBe(now);
    now += 2 * DAY - 60_000; // still more than a day of validity left
    expect(await cache.get({ kind: 'dns', name: 'long-lived.example' })).toBe(first);
    now += 120_000; // now less than a day left
    const second = await cache.get({ kind: 'dns', name: 'long-lived.example' });
    expect(second).not.toBe(first);
    expect(second.leaf.serialHex).not.toBe(first.leaf.serialHex);
    expect(second.leaf.notAfter.getTime()).toBeGreaterThan(first.leaf.notAfter.getTime());
    expect(mints).toHaveLength(2);
    expect(cache.size).toBe(1);
  });

  test('the entry bound is respected, least recently used first out', async () => {
    const { cache, mints } = newCache({ maxEntries: 3 });
    for (const name of ['a.example', 'b.example', 'c.example']) await cache.get({ kind: 'dns', name });
    await cache.get({ kind: 'dns', name: 'a.example' }); // a is now the most recently used
    for (const name of ['d.example', 'e.example']) await cache.get({ kind: 'dns', name });
    expect(cache.size).toBe(3);
    expect(mints).toHaveLength(5);
    await cache.get({ kind: 'dns', name: 'a.example' });
    expect(mints).toHaveLength(5);
    await cache.get({ kind: 'dns', name: 'b.example' });
    expect(mints).toHaveLength(6);
    expect(cache.size).toBe(3);
  });

  test('a failed mint is not cached; the next call retries', async () => {
    let now = authority.notAfter.getTime() + DAY; // the CA has expired: every mint fails
    const { cache, mints } = newCache({ clock: () => now });
    const [a, b] = await Promise.all([caughtBy(cache.get({ kind: 'dns', name: 'retry.example' })), caughtBy(cache.get({ kind: 'dns', name: 'retry.example' }))]);
    expect(a).toBeInstanceOf(GatewayError);
    expect((a as GatewayError).code).toBe('TG_ERR_CA');
    expect(b).toBe(a);
    expect(cache.size).toBe(0);
    now = Date.now();
    const context = await cache.get({ kind: 'dns', name: 'retry.example' });
    expect(context.leaf.notAfter.getTime()).toBeGreaterThan(now);
    expect(mints).toEqual(['retry.example']);
  });

  test('a name that cannot be in a certificate is rejected without minting', async () => {
    const { cache, mints } = newCache();
    const err = await caughtBy(cache.get({ kind: 'dns', name: 'bad name.example' }));
    expect((err as GatewayError).code).toBe('TG_ERR_BAD_TARGET');
    expect(mints).toHaveLength(0);
  });

  test('rejects inconsistent options', () => {
    expect(() => newCache({ validityMs: 48 * DAY })).toThrow(/47 days/);
    expect(() => newCache({ validityMs: DAY, refreshBeforeMs: DAY })).toThrow(/refresh margin/);
    expect(() => newCache({ maxEntries: 0 })).toThrow(/positive integer/);
    expect(() => newCache({ ticketKeys: Buffer.alloc(32) })).toThrow(/48 bytes/);
  });
});

// ---------------------------------------------------------------------------------------------
// Real peers on 127.0.0.1

const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';

interface Running {
  readonly port: number;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<Running> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await within(5_000, new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)), 'listen');
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return within(5_000, new Promise<void>((resolve) => server.close(() => resolve())), 'server close');
    },
  };
}

function answerHttp(socket: tls.TLSSocket): void {
  socket.on('error', () => undefined);
  socket.once('data', () => socket.end(RESPONSE));
}

/** Terminates TLS by SNI, as the gateway does for a name learnt from the ClientHello. */
function sniServer(cache: LeafCache): tls.Server {
  const server = tls.createServer(
    {
      SNICallback: (servername, callback) => {
        cache.get({ kind: 'dns', name: servername }).then(
          (context) => callback(null, context.secureContext),
          (err: Error) => callback(err),
        );
      },
    },
    answerHttp,
  );
  server.on('tlsClientError', () => undefined);
  return server;
}

/**
 * Terminates TLS with a context chosen before the handshake, as the gateway does when it knows
 * the destination from CONNECT or the original destination address (no SNI for IP literals).
 */
function preselectedServer(cache: LeafCache, destination: { kind: 'ip'; address: string } | { kind: 'dns'; name: string }): Server {
  return createNetServer((raw) => {
    raw.on('error', () => undefined);
    cache.get(destination).then(
      (context) => {
        answerHttp(new tls.TLSSocket(raw, { isServer: true, secureContext: context.secureContext }));
      },
      () => raw.destroy(),
    );
  });
}

interface ClientResult {
  readonly authorized: boolean;
  readonly authorizationError: string | undefined;
  readonly serial: string;
  readonly reused: boolean;
  readonly session: Buffer | undefined;
}

/** A Node TLS client; resolves after the handshake and, for TLS 1.3, the session ticket. */
function connectClient(options: tls.ConnectionOptions & { waitForSession?: boolean }): Promise<ClientResult> {
  return within(
    5_000,
    new Promise<ClientResult>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', ...options });
      let session: Buffer | undefined;
      let secured = false;
      const finish = (): void => {
        const cert = socket.getPeerCertificate() as tls.PeerCertificate | null;
        resolve({
          authorized: socket.authorized,
          authorizationError: socket.authorizationError?.message,
          serial: cert?.serialNumber ?? '',
          reused: socket.isSessionReused(),
          session,
        });
        socket.destroy();
      };
      socket.on('session', (s: Buffer) => {
        session = s;
        if (secured) finish();
      });
      socket.on('secureConnect', () => {
        secured = true;
        if (!options.waitForSession || session || socket.isSessionReused()) finish();
      });
      socket.on('data', () => undefined);
      socket.on('error', reject);
    }),
    'TLS client',
  );
}

describe('minted contexts served to real TLS clients', () => {
  test('Node TLS and curl accept a leaf chosen by SNI', async () => {
    const { cache } = newCache();
    const running = await listen(sniServer(cache));
    try {
      const node = await connectClient({ port: running.port, servername: 'www.example.com', ca: authority.certPem });
      expect(node.authorized).toBe(true);
      const cached = await cache.get({ kind: 'dns', name: 'www.example.com' });
      expect(node.serial).toBe(cached.leaf.serialHex);

      const curl = await runProcess('curl', [
        '--silent',
        '--show-error',
        '--noproxy',
        '*',
        '--max-time',
        '5',
        '--cacert',
        caPath,
        '--resolve',
        `www.example.com:${running.port}:127.0.0.1`,
        `https://www.example.com:${running.port}/`,
      ]);
      expect(curl.stderr).toBe('');
      expect(curl.stdout).toBe('ok');

      // Negative control: a client trusting another CA refuses the leaf.
      // Verification still runs against the other CA; not aborting lets the test read its verdict.
      const stranger = await connectClient({ port: running.port, servername: 'www.example.com', ca: otherAuthority.certPem, rejectUnauthorized: false });
      expect(stranger.authorized).toBe(false);
      const curlStranger = await runProcess('curl', [
        '--silent',
        '--noproxy',
        '*',
        '--max-time',
        '5',
        '--cacert',
        join(dir, 'other.pem'),
        '--resolve',
        `www.example.com:${running.port}:127.0.0.1`,
        `https://www.example.com:${running.port}/`,
      ]);
      expect(curlStranger.code).toBe(60); // CURLE_PEER_FAILED_VERIFICATION
    } finally {
      await running.close();
    }
  });

  test('Node TLS and curl accept an IP leaf chosen before the handshake', async () => {
    const { cache } = newCache();
    const running = await listen(preselectedServer(cache, { kind: 'ip', address: '127.0.0.1' }));
    try {
      const node = await connectClient({ port: running.port, ca: authority.certPem });
      expect(node.authorizationError).toBeUndefined();
      expect(node.authorized).toBe(true);
      const curl = await runProcess('curl', ['--silent', '--show-error', '--noproxy', '*', '--max-time', '5', '--cacert', caPath, `https://127.0.0.1:${running.port}/`]);
      expect(curl.stderr).toBe('');
      expect(curl.stdout).toBe('ok');
    } finally {
      await running.close();
    }
  });

  test.each(['TLSv1.2', 'TLSv1.3'] as const)('%s sessions resume across a re-mint (shared ticket keys)', async (maxVersion) => {
    // The first leaf is minted "two days ago" so both leaves are valid by the clients' real clock.
    let now = Date.now() - 2 * DAY - 60_000;
    const { cache, mints } = newCache({ clock: () => now, validityMs: 3 * DAY, refreshBeforeMs: DAY });
    const running = await listen(preselectedServer(cache, { kind: 'dns', name: 'resume.example' }));
    try {
      const base = { port: running.port, servername: 'resume.example', ca: authority.certPem, maxVersion, waitForSession: true };
      const first = await connectClient(base);
      expect(first.authorized).toBe(true);
      expect(first.session).toBeDefined();
      now = Date.now(); // past the first leaf's refresh point: the next connection gets a new leaf
      const fresh = await connectClient(base);
      expect(mints).toHaveLength(2);
      expect(fresh.reused).toBe(false);
      expect(fresh.serial).not.toBe(first.serial);
      const resumed = await connectClient({ ...base, session: first.session });
      expect(resumed.reused).toBe(true);
    } finally {
      await running.close();
    }
  });
});
