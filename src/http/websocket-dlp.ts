import type { Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import type { RelayEnd } from '../relay/relay';
import type { DlpFinding, DlpPolicy } from '../policy/dlp/dlp-types';
import { scanMessage } from '../policy/dlp/message-scan';
import { closeFrame, type FeedResult, MessageInspector, type MessageKind, type Verdict } from './websocket-frames';

/**
 * Largest WebSocket message reassembled for DLP. Above it a message cannot be judged whole: with
 * `action: deny` the connection is closed (1009, fail closed), with `action: log` it passes on
 * unscanned and the record says so.
 */
export const WEBSOCKET_DLP_MAX_MESSAGE_BYTES = 1024 * 1024;

/** Who sent the message a finding is about. */
export type WebSocketSide = 'client' | 'origin';

export interface WebSocketFinding extends DlpFinding {
  readonly from: WebSocketSide;
  /** 1-based number of the data message in its direction (for a control frame: of the last one). */
  readonly message: number;
  readonly kind: MessageKind;
}

export interface WebSocketDlpEvents {
  /** Every finding (deny: the first, which stops the connection; log: up to a bound). */
  onFinding(finding: WebSocketFinding): void;
  /** A message over the bound; `passed` says whether it went on unscanned. */
  onOversized(from: WebSocketSide, bytes: number, passed: boolean): void;
  /** DLP or a frame the gateway cannot judge stopped the connection. */
  onStopped(reason: string, kind: 'dlp' | 'protocol'): void;
}

export interface InspectedRelayResult {
  readonly close: RelayEnd | 'refused';
  readonly bytesUp: number;
  readonly bytesDown: number;
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
/** After the gateway's close frames, how long the peers get to close before they are cut. */
const CLOSE_GRACE_MS = 2000;
/** Findings reported per direction in report-only mode; enough to audit without growing with the connection. */
const MAX_LOGGED_FINDINGS = 16;

/**
 * Relays an upgraded WebSocket connection with DLP on its messages, both directions: each
 * message is reassembled (up to WEBSOCKET_DLP_MAX_MESSAGE_BYTES), scanned with the rule's
 * detectors, and passed on unchanged when allowed. A `deny` finding, or a frame that breaks
 * RFC 6455 so that messages can no longer be told apart, closes both sides with a close frame
 * (1008 policy violation, 1009 too big, 1002 protocol error) and then the connections.
 * Backpressure by `pipe`, half-close passed on, idle timeout over both sides, as the opaque relay.
 */
export function relayWithDlp(clientSocket: Socket, clientHead: Buffer, upSocket: Socket, dlp: DlpPolicy, idleTimeoutMs: number, events: WebSocketDlpEvents): Promise<InspectedRelayResult> {
  let closeKind: RelayEnd | 'refused' | null = null;
  let firstEnd: WebSocketSide | null = null;
  let stopped = false;
  const logged: Record<WebSocketSide, number> = { client: 0, origin: 0 };
  const messages: Record<WebSocketSide, number> = { client: 0, origin: 0 };

  const judge =
    (from: WebSocketSide) =>
    (payload: Buffer, kind: MessageKind): Verdict => {
      if (kind !== 'control') messages[from]++;
      const deny = dlp.action === 'deny';
      const findings = scanMessage(dlp.detectors, payload, deny ? 1 : MAX_LOGGED_FINDINGS - logged[from]);
      for (const f of findings) events.onFinding({ ...f, from, message: messages[from], kind });
      logged[from] += findings.length;
      return deny && findings.length > 0 ? 'deny' : 'pass';
    };
  const oversized =
    (from: WebSocketSide) =>
    (bytes: number): Verdict => {
      const passed = dlp.action !== 'deny';
      events.onOversized(from, bytes, passed);
      return passed ? 'pass' : 'deny';
    };

  let toClient: Transform;
  let toOrigin: Transform;
  const stop = (code: number, reason: string, kind: 'dlp' | 'protocol'): void => {
    if (stopped) return;
    stopped = true;
    closeKind = 'refused';
    events.onStopped(reason, kind);
    // Close frames first, in order after what was already passed on; then FIN both ways.
    toClient.push(closeFrame(code, reason, false));
    toOrigin.push(closeFrame(code, reason, true));
    toClient.push(null);
    toOrigin.push(null);
    const cut = setTimeout(() => {
      clientSocket.destroy();
      upSocket.destroy();
    }, CLOSE_GRACE_MS);
    cut.unref();
    clientSocket.once('close', () => upSocket.destroySoon());
    upSocket.once('close', () => clientSocket.destroySoon());
  };
  const direction = (from: WebSocketSide): Transform => {
    const inspector = new MessageInspector({ masked: from === 'client', maxMessageBytes: WEBSOCKET_DLP_MAX_MESSAGE_BYTES, judge: judge(from), oversized: oversized(from) });
    const transform = new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        if (stopped) {
          callback();
          return;
        }
        const result: FeedResult = inspector.feed(chunk, (bytes) => transform.push(bytes));
        if (result.kind === 'deny') stop(1008, `blocked by DLP (message from the ${from})`, 'dlp');
        else if (result.kind === 'too-big') stop(1009, `message from the ${from} too big for DLP to inspect`, 'dlp');
        else if (result.kind === 'protocol-error') stop(1002, `the ${from} broke WebSocket framing: ${result.reason}`, 'protocol');
        callback();
      },
    });
    return transform;
  };
  toOrigin = direction('client');
  toClient = direction('origin');

  const upWrittenAtStart = upSocket.bytesWritten;
  // Frames the origin sent right after its 101 were put back in the socket's buffer.
  const upReadAtStart = upSocket.bytesRead - upSocket.readableLength;
  return new Promise((resolve) => {
    let closed = 0;
    const onClose = (): void => {
      closed++;
      if (closed === 1) {
        // One side is gone for good; without a half-close from it, the other side must go too.
        if (clientSocket.destroyed && !upSocket.destroyed && firstEnd !== 'client') upSocket.destroy();
        if (upSocket.destroyed && !clientSocket.destroyed && firstEnd !== 'origin') clientSocket.destroy();
        return;
      }
      resolve({
        close: closeKind ?? (firstEnd === 'origin' ? 'upstream-closed' : 'client-closed'),
        bytesUp: Math.max(0, upSocket.bytesWritten - upWrittenAtStart),
        bytesDown: Math.max(0, upSocket.bytesRead - upReadAtStart),
      });
    };
    const onError = (side: WebSocketSide) => (err: NodeJS.ErrnoException) => {
      closeKind ??= RESET_CODES.has(err.code ?? '') ? (side === 'client' ? 'client-reset' : 'upstream-reset') : 'error';
      (side === 'client' ? upSocket : clientSocket).destroy();
    };
    clientSocket.on('error', onError('client'));
    upSocket.on('error', onError('origin'));
    // A late error on a transform (a write after its end) must not crash the process.
    toClient.on('error', () => clientSocket.destroy());
    toOrigin.on('error', () => upSocket.destroy());
    clientSocket.once('end', () => (firstEnd ??= 'client'));
    upSocket.once('end', () => (firstEnd ??= 'origin'));
    clientSocket.once('close', onClose);
    upSocket.once('close', onClose);
    const onIdle = (): void => {
      closeKind ??= 'timeout';
      clientSocket.destroy();
      upSocket.destroy();
    };
    clientSocket.setTimeout(idleTimeoutMs, onIdle);
    upSocket.setTimeout(idleTimeoutMs, onIdle);
    clientSocket.setNoDelay(true);
    upSocket.setNoDelay(true);
    upSocket.pipe(toClient).pipe(clientSocket);
    if (clientHead.length > 0) toOrigin.write(clientHead);
    clientSocket.pipe(toOrigin).pipe(upSocket);
    clientSocket.resume();
  });
}
