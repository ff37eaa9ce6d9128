import { hashPassword } from '../../../src/identity/password-hash';
import type { Authenticator, Principal } from '../../../src/identity/principal';

/**
 * A tiny but real Authenticator for front-end tests: a fixed user table. The gateway's own
 * user store (hashing, throttling) is tested on its own.
 */
export function staticAuthenticator(users: Readonly<Record<string, { password: string; groups?: string[] }>>): Authenticator & { readonly attempts: string[] } {
  const attempts: string[] = [];
  return {
    required: Object.keys(users).length > 0,
    attempts,
    verify(username: string, password: string): Promise<Principal | null> {
      attempts.push(username);
      const user = users[username];
      if (!user || user.password !== password) return Promise.resolve(null);
      return Promise.resolve({ user: username, groups: user.groups ?? [] });
    },
  };
}

/** Lighter than the shipped cost so suites stay quick on shared CPUs; same format and code. */
export const TEST_SCRYPT = { ln: 12, r: 8, p: 1 };

/** A users file (the gateway's own format and hashing) for the given users. */
export async function usersYaml(users: Readonly<Record<string, { password: string; groups: readonly string[] }>>): Promise<string> {
  const lines = ['# test users', 'users:'];
  for (const [name, user] of Object.entries(users)) {
    lines.push(`  ${name}:`, `    password: "${await hashPassword(user.password, TEST_SCRYPT)}"`, `    groups: [${user.groups.join(', ')}]`);
  }
  return `${lines.join('\n')}\n`;
}
