/** Who is behind a flow, once proxy authentication has established it. */
export interface Principal {
  readonly user: string;
  readonly groups: readonly string[];
}

/**
 * Verifies user credentials for every front-end that carries them: `Proxy-Authorization: Basic`
 * on the explicit proxy and RFC 1929 username/password on SOCKS5. One store, one throttle.
 */
export interface Authenticator {
  /** True when users are configured: then every front-end that can authenticate must. */
  readonly required: boolean;
  /**
   * The principal for these credentials, or null when they are wrong or the client address is
   * being throttled after repeated failures. Never throws for bad input. `frontend` labels the
   * log line of a failure (e.g. `socks`); callers publish `tollgate:auth:failed` themselves.
   */
  verify(username: string, password: string, clientAddress: string, frontend?: string): Promise<Principal | null>;
  /**
   * Whether a name is a configured user, so a failure may name it in the log. People type
   * passwords into the name field: a name that is not a user is logged as `[unknown]`.
   */
  isKnownUser?(name: string): boolean;
}
