import { SOCKS4_REPLY, SOCKS5_REPLY } from '../protocol/socks-wire';

/**
 * Every failure the gateway reports carries a stable code from this catalogue and the phase of
 * the flow in which it happened. A *deny* is not an error: it is a policy decision (see
 * policy/types.ts). `errors/refusal.ts` is the one place that turns a code into what a client
 * sees; `docs/errors.md` documents each code and a test keeps the two in step.
 */

export type Phase = 'accept' | 'parse' | 'auth' | 'decide' | 'resolve' | 'connect' | 'tls-client' | 'tls-origin' | 'forward' | 'relay' | 'config' | 'startup';

export interface ErrorSpec {
  /** HTTP status a client of the explicit or transparent HTTP front-end receives. */
  readonly httpStatus: number;
  /** SOCKS5 reply code (RFC 1928 section 6). */
  readonly socks5Reply: number;
  /** SOCKS4 reply code (0x5B rejected or failed, 0x5C/0x5D identd). */
  readonly socks4Reply: number;
  /** One line for the block page and the documentation. */
  readonly summary: string;
}

export const ERROR_CATALOGUE = {
  TG_ERR_BAD_REQUEST: {
    httpStatus: 400,
    socks5Reply: SOCKS5_REPLY.generalFailure,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The request is malformed or ambiguous and was not forwarded.',
  },
  TG_ERR_BAD_TARGET: {
    httpStatus: 400,
    socks5Reply: SOCKS5_REPLY.addressTypeNotSupported,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The destination is not a valid host name, address or port.',
  },
  TG_ERR_HEADERS_TOO_LARGE: {
    httpStatus: 431,
    socks5Reply: SOCKS5_REPLY.generalFailure,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The request line or headers exceed the configured limit.',
  },
  TG_ERR_CLIENT_TIMEOUT: {
    httpStatus: 408,
    socks5Reply: SOCKS5_REPLY.ttlExpired,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The client did not send its request in time.',
  },
  TG_ERR_AUTH_REQUIRED: {
    httpStatus: 407,
    socks5Reply: SOCKS5_REPLY.notAllowedByRuleset,
    socks4Reply: SOCKS4_REPLY.identdMismatch,
    summary: 'Proxy authentication is required or the credentials were wrong.',
  },
  TG_ERR_AUTH_THROTTLED: {
    httpStatus: 429,
    socks5Reply: SOCKS5_REPLY.notAllowedByRuleset,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'Too many failed authentications from this client address; credentials are not checked until the window ends.',
  },
  TG_ERR_UNSUPPORTED: {
    httpStatus: 501,
    socks5Reply: SOCKS5_REPLY.commandNotSupported,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The gateway does not support this protocol feature.',
  },
  TG_ERR_MISDIRECTED: {
    httpStatus: 421,
    socks5Reply: SOCKS5_REPLY.notAllowedByRuleset,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The reverse-proxy listener serves no application under this host name (no route in reverse.routes).',
  },
  TG_ERR_LOOP: {
    httpStatus: 403,
    socks5Reply: SOCKS5_REPLY.notAllowedByRuleset,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: "The destination is one of the gateway's own listeners (proxy loop).",
  },
  TG_ERR_DESTINATION_FORBIDDEN: {
    httpStatus: 403,
    socks5Reply: SOCKS5_REPLY.notAllowedByRuleset,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The destination address is internal (loopback, private, link-local or reserved).',
  },
  TG_ERR_DLP_BLOCKED: {
    httpStatus: 403,
    socks5Reply: SOCKS5_REPLY.notAllowedByRuleset,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'An upload matched a data loss prevention detector and was stopped.',
  },
  TG_ERR_DNS: {
    httpStatus: 502,
    socks5Reply: SOCKS5_REPLY.hostUnreachable,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The destination name could not be resolved.',
  },
  TG_ERR_UPSTREAM_REFUSED: {
    httpStatus: 502,
    socks5Reply: SOCKS5_REPLY.connectionRefused,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The origin refused the connection.',
  },
  TG_ERR_UPSTREAM_UNREACHABLE: {
    httpStatus: 502,
    socks5Reply: SOCKS5_REPLY.hostUnreachable,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The origin could not be reached.',
  },
  TG_ERR_UPSTREAM_TIMEOUT: {
    httpStatus: 504,
    socks5Reply: SOCKS5_REPLY.ttlExpired,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The origin did not answer in time.',
  },
  TG_ERR_UPSTREAM_CERT: {
    httpStatus: 502,
    socks5Reply: SOCKS5_REPLY.generalFailure,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The origin presented a certificate that failed verification.',
  },
  TG_ERR_UPSTREAM_TLS: {
    httpStatus: 502,
    socks5Reply: SOCKS5_REPLY.generalFailure,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The TLS handshake with the origin failed.',
  },
  TG_ERR_UPSTREAM_PROTOCOL: {
    httpStatus: 502,
    socks5Reply: SOCKS5_REPLY.generalFailure,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The origin closed the connection or sent an invalid response.',
  },
  TG_ERR_PARENT_UNREACHABLE: {
    httpStatus: 502,
    socks5Reply: SOCKS5_REPLY.generalFailure,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The parent proxy (upstream.parents) could not be reached or did not answer in time.',
  },
  TG_ERR_PARENT_REFUSED: {
    httpStatus: 502,
    socks5Reply: SOCKS5_REPLY.generalFailure,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The parent proxy refused the connection or request (its answer is in the message).',
  },
  TG_ERR_OVERLOADED: {
    httpStatus: 503,
    socks5Reply: SOCKS5_REPLY.generalFailure,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The gateway is at its connection limit; try again shortly.',
  },
  TG_ERR_SHUTTING_DOWN: {
    httpStatus: 503,
    socks5Reply: SOCKS5_REPLY.generalFailure,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The gateway is shutting down.',
  },
  TG_ERR_INTERNAL: {
    httpStatus: 500,
    socks5Reply: SOCKS5_REPLY.generalFailure,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'An unexpected error occurred inside the gateway.',
  },
  TG_ERR_CONFIG: {
    httpStatus: 500,
    socks5Reply: SOCKS5_REPLY.generalFailure,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The configuration or a policy file is invalid.',
  },
  TG_ERR_CA: {
    httpStatus: 500,
    socks5Reply: SOCKS5_REPLY.generalFailure,
    socks4Reply: SOCKS4_REPLY.rejected,
    summary: 'The gateway CA could not be loaded, generated or used.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  constructor(
    readonly code: ErrorCode,
    readonly phase: Phase,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get spec(): ErrorSpec {
    return ERROR_CATALOGUE[this.code];
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}

/** Wraps anything thrown into a GatewayError, keeping an existing one as it is. */
export function asGatewayError(err: unknown, phase: Phase): GatewayError {
  if (err instanceof GatewayError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new GatewayError('TG_ERR_INTERNAL', phase, message, { cause: err });
}
