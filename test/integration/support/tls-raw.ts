import { run } from './run';

export interface TlsRawOptions {
  /** Explicit proxy port: `openssl s_client -proxy` opens the tunnel with CONNECT `connect`. */
  readonly proxyPort: number;
  /** host:port for CONNECT. */
  readonly connect: string;
  /** The server name the ClientHello carries. */
  readonly sni: string;
  /** CA file the client trusts (the gateway CA). */
  readonly caFile: string;
  readonly payload: string | Buffer;
  readonly timeoutMs?: number;
}

/**
 * Sends raw bytes inside TLS through a CONNECT tunnel with `openssl s_client` (a client nobody
 * on the team wrote), trusting only the gateway CA, and returns everything the server sent
 * back. The payload should end its last request with `Connection: close` so the exchange ends.
 */
export async function tlsRawExchange(options: TlsRawOptions): Promise<{ text: string; verified: boolean; stderr: string }> {
  const result = await run(
    'openssl',
    ['s_client', '-proxy', `127.0.0.1:${options.proxyPort}`, '-connect', options.connect, '-servername', options.sni, '-CAfile', options.caFile, '-verify_return_error', '-quiet'],
    { input: options.payload, timeoutMs: options.timeoutMs ?? 10_000 },
  );
  return { text: result.stdout.toString('latin1'), verified: !/verify error/i.test(result.stderr), stderr: result.stderr };
}

/** One chunk of a chunked body (RFC 9112 7.1), followed by the last chunk when `last`. */
export function chunked(body: string, last = true): string {
  const chunk = `${Buffer.byteLength(body, 'latin1').toString(16)}\r\n${body}\r\n`;
  return last ? `${chunk}0\r\n\r\n` : chunk;
}

/** Status codes of every response in a raw HTTP/1.1 transcript, in order. */
export function statuses(transcript: string): number[] {
  return [...transcript.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}
