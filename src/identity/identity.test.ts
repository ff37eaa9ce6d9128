import crypto from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { ConfigError } from '../sources/config-error';
import { parseBasic, parseProxyAuthorization } from './basic-credentials';
import { ConcurrencyLimit } from './concurrency-limit';
import { type FailureCounter, FailureThrottle } from './failure-throttle';
import { hashPassword, parsePasswordHash, verifyPassword, type ScryptParams } from './password-hash';
import { UserStore } from './user-store';
import { parseUsersFile } from './users-file';
import { readUsersDocument, removeUser, setUser, writeUsersDocument } from './users-file-edit';

/** Cheap parameters keep the unit tests fast; the format and comparison are the same. */
const FAST: ScryptParams = { ln: 10, r: 8, p: 1 };

function capture(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

describe('password hashes', () => {
  test('self-describing, salted, verified in constant time', async () => {
    const a = await hashPassword('correct horse', FAST);
    const b = await hashPassword('correct horse', FAST);
    expect(a).toMatch(/^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(a).not.toBe(b);
    const parsed = parsePasswordHash(a);
    if (typeof parsed === 'string') throw new Error(parsed);
    expect(await verifyPassword('correct horse', parsed)).toBe(true);
    expect(await verifyPassword('correct horsE', parsed)).toBe(false);
  });

  test('the default parameters are ln=15, r=8, p=1', async () => {
    expect(await hashPassword('x'.repeat(12))).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$/);
  });

  test.each([
    ['plain', 'not a hash'],
    ['bcrypt', '$2b$10$abcdefghijklmnopqrstuv'],
    ['huge cost', '$scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g'],
    ['short salt', '$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2g'],
  ])('rejects %s', (_name, encoded) => {
    expect(typeof parsePasswordHash(encoded)).toBe('string');
  });
});

describe('Basic credentials', () => {
  const basic = (text: string): string => `Basic ${Buffer.from(text).toString('base64')}`;
  test.each([
    ['alice:secret', { username: 'alice', password: 'secret' }],
    ['alice:se:cret', { username: 'alice', password: 'se:cret' }],
    ['alice:', { username: 'alice', password: '' }],
    ['jürgen:pässword', { username: 'jürgen', password: 'pässword' }],
  ])('%s', (text, expected) => {
    expect(parseBasic(basic(text))).toEqual({ kind: 'ok', credentials: expected });
  });

  test.each([
    ['Bearer abc', /Basic only/],
    ['Basic', /not "Basic <base64>"/],
    [basic('no-colon'), /":"/],
    [basic('a:b\nc'), /control/],
    [`Basic ${'A'.repeat(5000)}`, /too long/],
  ])('refuses %s', (value, reason) => {
    const parsed = parseBasic(value);
    expect(parsed.kind).toBe('invalid');
    if (parsed.kind === 'invalid') expect(parsed.reason).toMatch(reason);
  });

  test('absent, and duplicated headers', () => {
    expect(parseProxyAuthorization(['Host', 'x'])).toEqual({ kind: 'none' });
    expect(parseProxyAuthorization(['proxy-authorization', basic('a:b'), 'Proxy-Authorization', basic('c:d')]).kind).toBe('invalid');
  });
});

describe('users file', () => {
  test('load errors name file, line and the fix', async () => {
    const good = await hashPassword('password1', FAST);
    const text = `users:\n  alice:\n    password: "${good}"\n    groups: [eng]\n  bob:\n    password: hunter2\n  "bad:name":\n    password: "${good}"\n  carol:\n    pasword: x\n`;
    let error: unknown;
    try {
      parseUsersFile(text, path.join(process.cwd(), 'users.yaml'));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toMatch(/users\.yaml:6: users\.bob\.password: not a password hash: .*tollgate user add bob/);
    expect(message).toMatch(/users\.yaml:7: users\.bad:name: invalid user name/);
    expect(message).toMatch(/users\.yaml:10: users\.carol\.pasword: unknown key/);
  });

  test('edits keep comments, validate, and write mode 0600', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-users-'));
    const file = path.join(dir, 'users.yaml');
    const first = readUsersDocument(file);
    expect(first.existed).toBe(false);
    setUser(first, 'alice', await hashPassword('password1', FAST), ['eng', 'ops']);
    writeUsersDocument(first);
    const { statSync, readFileSync } = await import('node:fs');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    writeFileSync(file, `# keep me\n${readFileSync(file, 'utf8')}`, { mode: 0o600 });
    const second = readUsersDocument(file);
    expect(setUser(second, 'bob', await hashPassword('password2', FAST), null)).toBe('added');
    expect(setUser(second, 'alice', await hashPassword('password3', FAST), null)).toBe('updated');
    const table = writeUsersDocument(second);
    expect(table.users.get('alice')?.groups).toEqual(['eng', 'ops']);
    expect(table.users.get('bob')?.groups).toEqual([]);
    expect(readFileSync(file, 'utf8')).toMatch(/# keep me/);
    const third = readUsersDocument(file);
    expect(removeUser(third, 'bob')).toBe(true);
    expect(removeUser(third, 'nobody')).toBe(false);
    expect([...writeUsersDocument(third).users.keys()]).toEqual(['alice']);
  });
});

describe('failure throttle', () => {
  test('refuses after max failures until the window ends', () => {
    let now = 1_000;
    const throttle = new FailureThrottle(3, 10_000, () => now);
    for (let i = 0; i < 2; i++) throttle.recordFailure('10.0.0.1');
    expect(throttle.retryAfterMs('10.0.0.1')).toBe(0);
    throttle.recordFailure('10.0.0.1');
    expect(throttle.retryAfterMs('10.0.0.1')).toBe(10_000);
    expect(throttle.retryAfterMs('10.0.0.2')).toBe(0);
    now += 9_000;
    expect(throttle.retryAfterMs('10.0.0.1')).toBe(1_000);
    now += 1_000;
    expect(throttle.retryAfterMs('10.0.0.1')).toBe(0);
  });
});

describe('failure slots (reserved before a check runs)', () => {
  test('no more slots than max failures at once; a success gives its slot back; the lock is reported once', () => {
    const throttle = new FailureThrottle(3, 10_000, () => 1_000);
    const slots = [throttle.reserve('10.0.0.1'), throttle.reserve('10.0.0.1'), throttle.reserve('10.0.0.1')];
    expect(slots.every((slot) => slot !== null)).toBe(true);
    expect(throttle.reserve('10.0.0.1')).toBeNull();
    // While every slot is held, the address is refused like a locked one.
    expect(throttle.retryAfterMs('10.0.0.1')).toBe(10_000);
    expect(throttle.reserve('10.0.0.2')).not.toBeNull();
    slots[0]!.release();
    expect(throttle.retryAfterMs('10.0.0.1')).toBe(0);
    expect(slots[1]!.confirm()).toEqual({ failures: 1, locked: false });
    expect(slots[2]!.confirm()).toEqual({ failures: 2, locked: false });
    expect(() => slots[2]!.release()).toThrow();
    expect(throttle.recordFailure('10.0.0.1')).toEqual({ failures: 3, locked: true });
    expect(throttle.recordFailure('10.0.0.1')).toEqual({ failures: 4, locked: false });
    expect(throttle.reserve('10.0.0.1')).toBeNull();
  });
});

describe('concurrency limit for password checks', () => {
  test('runs at most max at once, queues a bounded number, refuses the rest at once', async () => {
    const limit = new ConcurrencyLimit(2, 2);
    let active = 0;
    let peak = 0;
    const releases: (() => void)[] = [];
    const task = () =>
      new Promise<string>((resolve) => {
        active++;
        peak = Math.max(peak, active);
        releases.push(() => {
          active--;
          resolve('done');
        });
      });
    const runs = [limit.run(task), limit.run(task), limit.run(task), limit.run(task)];
    expect(await limit.run(task)).toBeNull();
    for (let i = 0; i < 20 && releases.length < 4; i++) {
      await new Promise((r) => setImmediate(r));
      releases.shift()?.();
    }
    while (releases.length > 0) releases.shift()!();
    expect(await Promise.all(runs)).toEqual(['done', 'done', 'done', 'done']);
    expect(peak).toBe(2);
  });
});

describe('UserStore', () => {
  async function storeWith(users: Record<string, { password: string; groups?: string[] }>, maxFailures = 3, counter?: FailureCounter) {
    const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-store-'));
    const file = path.join(dir, 'users.yaml');
    const write = async (entries: typeof users): Promise<void> => {
      const lines = ['users:'];
      for (const [name, u] of Object.entries(entries)) lines.push(`  ${name}:`, `    password: "${await hashPassword(u.password, FAST)}"`, `    groups: [${(u.groups ?? []).join(', ')}]`);
      writeFileSync(file, `${lines.join('\n')}\n`);
    };
    await write(users);
    const { logger, lines } = capture();
    const store = UserStore.load({ file, maxFailures, failureWindowMs: 60_000, ...(counter ? { counter } : {}) }, logger);
    return { store, file, write, lines };
  }

  test('verifies, remembers successes, throttles failures per address, never logs passwords', async () => {
    const { store, lines } = await storeWith({ alice: { password: 'alice-password', groups: ['eng'] } });
    expect(await store.verify('alice', 'alice-password', '10.0.0.1')).toEqual({ user: 'alice', groups: ['eng'] });
    expect(await store.verify('alice', 'bad-guess-1', '10.0.0.1')).toBeNull();
    expect(await store.verify('mallory', 'whatever-pass', '10.0.0.1')).toBeNull();
    expect(await store.verify('alice', 'bad-guess-2', '10.0.0.1')).toBeNull();
    // Throttled: even the right password is refused from this address, but not from another.
    expect(await store.verify('alice', 'alice-password', '10.0.0.1')).toBeNull();
    expect(await store.throttledFor('10.0.0.1')).toBeGreaterThan(0);
    expect(await store.verify('alice', 'alice-password', '10.0.0.2')).not.toBeNull();
    const log = lines.join('');
    expect(log).not.toMatch(/alice-password|bad-guess|whatever-pass|mallory/);
    expect(log).toMatch(/too many failed authentications/);
    expect(log).toMatch(/readable by group or others; chmod 600/);
  });

  test("group read by the process's own group is not exposure (a Kubernetes Secret volume with fsGroup); others' read is", async () => {
    const { chmodSync } = await import('node:fs');
    const { store, file, lines } = await storeWith({ alice: { password: 'alice-password' } });
    const before = lines.length;
    chmodSync(file, 0o440);
    store.reload('test');
    expect(lines.slice(before).join('')).not.toMatch(/readable by group or others/);
    chmodSync(file, 0o604);
    store.reload('test');
    expect(lines.slice(before).join('')).toMatch(/readable by group or others; chmod 600/);
  });

  test('a failure count that cannot be reached fails closed: nothing is checked, not even a cached success', async () => {
    let reachable = true;
    const local = new FailureThrottle(3, 60_000);
    const down = (): Promise<never> => Promise.reject(new Error('ECONNREFUSED'));
    const counter: FailureCounter = {
      retryAfterMs: (a) => (reachable ? Promise.resolve(local.retryAfterMs(a)) : down()),
      reserve: (a) => {
        if (!reachable) return down();
        const slot = local.reserve(a);
        return Promise.resolve(slot && { confirm: () => Promise.resolve(slot.confirm()), release: () => slot.release() });
      },
      recordFailure: (a) => (reachable ? Promise.resolve(local.recordFailure(a)) : down()),
    };
    const { store, lines } = await storeWith({ alice: { password: 'alice-password' } }, 3, counter);
    expect(await store.verify('alice', 'alice-password', '10.0.9.1')).not.toBeNull();
    reachable = false;
    const spy = jest.spyOn(crypto, 'scrypt');
    try {
      const outcomes = await Promise.all([store.authenticate('alice', 'alice-password', '10.0.9.1', 'test'), store.authenticate('alice', 'guess', '10.0.9.2', 'test')]);
      expect(outcomes.map((o) => (o.ok ? 'ok' : o.reason))).toEqual(['unavailable', 'unavailable']);
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
    expect(lines.join('')).toMatch(/refused without checking: the shared failure count/);
    reachable = true;
    expect(await store.verify('alice', 'alice-password', '10.0.9.1')).not.toBeNull();
  });

  describe('concurrent attempts from one address', () => {
    /** Counts the scrypt runs (password checks) made while `run` is in progress. */
    async function countingChecks<T>(run: () => Promise<T>): Promise<{ result: T; checks: number }> {
      const spy = jest.spyOn(crypto, 'scrypt');
      try {
        const result = await run();
        return { result, checks: spy.mock.calls.length };
      } finally {
        spy.mockRestore();
      }
    }

    test('wrong passwords sent all at once get no more than max_failures checks; the rest are throttled unchecked', async () => {
      const { store, lines } = await storeWith({ alice: { password: 'alice-password' } }, 3);
      const { result, checks } = await countingChecks(() =>
        Promise.all(Array.from({ length: 60 }, (_, i) => store.authenticate(i % 2 === 0 ? 'alice' : `nobody-${i}`, `guess-${i}`, '10.0.1.1', 'test'))),
      );
      expect(checks).toBe(3);
      const reasons = result.map((o) => (o.ok ? 'ok' : o.reason));
      expect(reasons.filter((r) => r === 'wrong-password' || r === 'unknown-user')).toHaveLength(3);
      expect(reasons.filter((r) => r === 'throttled')).toHaveLength(57);
      expect(lines.filter((l) => l.includes('"msg":"proxy authentication failed"'))).toHaveLength(3);
      expect(lines.filter((l) => l.includes('too many failed authentications'))).toHaveLength(1);
      // Locked: the right password is not checked either, and another address is unaffected.
      expect((await countingChecks(() => store.authenticate('alice', 'alice-password', '10.0.1.1', 'test'))).checks).toBe(0);
      expect(await store.verify('alice', 'alice-password', '10.0.1.2')).not.toBeNull();
    });

    test('a success gives its reserved slot back', async () => {
      const { store } = await storeWith({ alice: { password: 'alice-password' } }, 3);
      const first = await Promise.all([
        store.authenticate('alice', 'guess-1', '10.0.2.1', 'test'),
        store.authenticate('alice', 'alice-password', '10.0.2.1', 'test'),
        store.authenticate('alice', 'guess-2', '10.0.2.1', 'test'),
      ]);
      expect(first.map((o) => (o.ok ? 'ok' : o.reason))).toEqual(['wrong-password', 'ok', 'wrong-password']);
      expect(await store.throttledFor('10.0.2.1')).toBe(0);
      // Two failures so far: one more wrong password is still checked, then the address is locked.
      expect((await store.authenticate('alice', 'guess-3', '10.0.2.1', 'test')).ok).toBe(false);
      expect(await store.throttledFor('10.0.2.1')).toBeGreaterThan(0);
    });

    test('one burst of the right credentials (a browser opening many connections) shares one check and is never throttled', async () => {
      const { store } = await storeWith({ alice: { password: 'alice-password' } }, 3);
      const { result, checks } = await countingChecks(() => Promise.all(Array.from({ length: 20 }, () => store.authenticate('alice', 'alice-password', '10.0.3.1', 'test'))));
      expect(result.every((o) => o.ok)).toBe(true);
      expect(checks).toBe(1);
      expect(await store.throttledFor('10.0.3.1')).toBe(0);
    });

    test('one burst of the same wrong credentials runs one check', async () => {
      const { store } = await storeWith({ alice: { password: 'alice-password' } }, 3);
      const { result, checks } = await countingChecks(() => Promise.all(Array.from({ length: 20 }, () => store.authenticate('alice', 'same-guess', '10.0.4.1', 'test'))));
      expect(checks).toBe(1);
      expect(result.every((o) => !o.ok)).toBe(true);
      expect(await store.throttledFor('10.0.4.1')).toBeGreaterThan(0);
    });
  });

  test('a reload with an invalid file keeps the users in force; a valid one replaces them', async () => {
    const { store, file, write, lines } = await storeWith({ alice: { password: 'alice-password' } });
    writeFileSync(file, 'users:\n  alice:\n    password: broken\n');
    const failed = store.reload('test');
    expect(failed.ok).toBe(false);
    expect(failed.problems.join('\n')).toMatch(/users\.yaml:3: users\.alice\.password/);
    expect(lines.join('')).toMatch(/users file reload failed; the previous users stay in force/);
    expect(await store.verify('alice', 'alice-password', '10.0.0.3')).not.toBeNull();
    await write({ bob: { password: 'bob-password', groups: ['ops'] } });
    expect(store.reload('test').ok).toBe(true);
    // The cached success for alice is gone with her entry.
    expect(await store.verify('alice', 'alice-password', '10.0.0.4')).toBeNull();
    expect(await store.verify('bob', 'bob-password', '10.0.0.4')).toEqual({ user: 'bob', groups: ['ops'] });
    expect(store.principalOf('bob')).toEqual({ user: 'bob', groups: ['ops'] });
  });
});
