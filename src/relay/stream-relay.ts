import type { Socket } from 'node:net';
import { PassThrough, type Transform } from 'node:stream';
import type { Detector, DlpFinding } from '../policy/dlp/dlp-types';
import type { RelayEnd } from './relay';
import { StreamDlpMatch, createStreamScanner } from './stream-dlp';

export type StreamDirection = 'client-to-origin' | 'origin-to-client';

export interface StreamFinding extends DlpFinding {
  readonly direction: StreamDirection;
}

export interface StreamRelayOptions {
  readonly idleTimeoutMs: number;
  /** The rule's DLP detectors, scanning both directions; cut = end the stream on a finding. */
  readonly dlp: { readonly detectors: readonly Detector[]; readonly cut: boolean } | null;
  /** Client bytes already read (the first decrypted bytes), sent to the origin first. */
  readonly replayUp: Buffer;
  /** Origin bytes already read (a greeting), sent to the client first. */
  readonly replayDown: Buffer;
}

export interface StreamRelayResult {
  readonly close: RelayEnd;
  /** Stream bytes (decrypted, for TLS) from the client to the origin and back. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly findings: readonly StreamFinding[];
  /** The finding that cut the stream, if one did. */
  readonly cut: StreamFinding | null;
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/**
 * Relays a stream that is not HTTP between two sockets (the client's decrypted TLS session and
 * a verified TLS session to the origin), with backpressure (`pipe` through the DLP scanners,
 * which pass chunks on at once), half-close (one side's end becomes the other's), an idle timer
 * on both, and the rule's DLP detectors on both directions. Resolves once both sides closed.
 */
export function relayStream(client: Socket, origin: Socket, options: StreamRelayOptions): Promise<StreamRelayResult> {
  return new Promise((resolve) => {
    let close: RelayEnd | null = null;
    let firstEnd: 'client' | 'origin' | null = null;
    let bytesUp = options.replayUp.length;
    let bytesDown = options.replayDown.length;
    const findings: StreamFinding[] = [];
    let cut: StreamFinding | null = null;
    const stage = (direction: StreamDirection): Transform => {
      if (!options.dlp) return new PassThrough();
      const dlp = options.dlp;
      const scanner = createStreamScanner({ detectors: dlp.detectors, cut: dlp.cut, onFinding: (f) => findings.push({ ...f, direction }) });
      scanner.on('error', (err) => {
        if (err instanceof StreamDlpMatch) cut ??= { ...err.finding, direction };
        close ??= 'error';
        client.destroy();
        origin.destroy();
      });
      return scanner;
    };
    const up = stage('client-to-origin');
    const down = stage('origin-to-client');
    const fail = (side: 'client' | 'origin', err: NodeJS.ErrnoException): void => {
      const reset = RESET_CODES.has(err.code ?? '');
      close ??= reset ? (side === 'client' ? 'client-reset' : 'upstream-reset') : 'error';
      (side === 'client' ? origin : client).destroy();
    };
    client.on('error', (err: NodeJS.ErrnoException) => fail('client', err));
    origin.on('error', (err: NodeJS.ErrnoException) => fail('origin', err));
    client.once('end', () => (firstEnd ??= 'client'));
    origin.once('end', () => (firstEnd ??= 'origin'));
    client.on('data', (chunk: Buffer) => (bytesUp += chunk.length));
    origin.on('data', (chunk: Buffer) => (bytesDown += chunk.length));
    const onIdle = (): void => {
      close ??= 'timeout';
      client.destroy();
      origin.destroy();
    };
    client.setTimeout(options.idleTimeoutMs, onIdle);
    origin.setTimeout(options.idleTimeoutMs, onIdle);
    let closed = 0;
    const onClose = (): void => {
      closed++;
      if (closed === 1) {
        // One side is gone for good; without a half-close from it, the other must go too.
        if (client.destroyed && !origin.destroyed && firstEnd !== 'client') origin.destroy();
        if (origin.destroyed && !client.destroyed && firstEnd !== 'origin') client.destroy();
        return;
      }
      client.setTimeout(0);
      origin.setTimeout(0);
      resolve({ close: close ?? (firstEnd === 'origin' ? 'upstream-closed' : 'client-closed'), bytesUp, bytesDown, findings, cut });
    };
    client.once('close', onClose);
    origin.once('close', onClose);
    if (options.replayDown.length > 0) down.write(options.replayDown);
    if (options.replayUp.length > 0) up.write(options.replayUp);
    origin.pipe(down).pipe(client);
    client.pipe(up).pipe(origin);
    client.resume();
    origin.resume();
  });
}
