import type { Authenticator, Principal } from '../../../src/identity/types';

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
