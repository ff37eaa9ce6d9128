import { GatewayError } from '../errors/gateway-error';
import type { Logger } from '../logging/logger';
import { publish } from '../observability/events';
import type { DlpPolicy } from '../policy/dlp/dlp-types';
import type { RequestTracker } from './request-record';
import { WEBSOCKET_DLP_MAX_MESSAGE_BYTES, type WebSocketDlpEvents } from './websocket-dlp';

/**
 * The handshake sent to the origin when the WebSocket's messages are inspected: without
 * `Sec-WebSocket-Extensions`, so no extension (permessage-deflate above all) is negotiated and
 * every payload is plain. Inflating instead would mean keeping each direction's compression
 * context for the connection's life and bounding the inflation of untrusted data; declining
 * costs bandwidth only, and both peers must work without the extension (RFC 7692 section 5).
 */
export function handshakeForInspection(headers: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() !== 'sec-websocket-extensions') out.push(headers[i]!, headers[i + 1]!);
  return out;
}

/** What DLP on a WebSocket's messages reports: the request record, metrics and the operational log. */
export function websocketDlpEvents(tracker: RequestTracker, dlp: DlpPolicy, ruleId: string, log: Logger, requestId: string): WebSocketDlpEvents {
  const bound = `${WEBSOCKET_DLP_MAX_MESSAGE_BYTES / 1024} KiB`;
  return {
    onFinding: (finding) => {
      tracker.dlpFinding({ detector: finding.detector, offset: finding.offset, action: dlp.action }, ruleId);
      publish('tollgate:dlp:matched', { detector: finding.detector, action: dlp.action });
      if (dlp.action !== 'deny') return;
      const what = finding.kind === 'control' ? `A WebSocket control frame (ping, pong or close) from the ${finding.from}` : `WebSocket message ${finding.message} from the ${finding.from}`;
      const reason = `${what} matched the DLP detector ${finding.detector} at byte ${finding.offset}`;
      tracker.dlpDenied(reason);
      tracker.fail(new GatewayError('TG_ERR_DLP_BLOCKED', 'forward', `${reason} (rule ${ruleId})`));
    },
    onOversized: (from, bytes, passed) => {
      const reason = `a WebSocket message from the ${from} of at least ${bytes} bytes is larger than the ${bound} DLP scan bound`;
      log.warn({ request_id: requestId, rule: ruleId, bytes }, passed ? `${reason}: passed on unscanned (dlp action log)` : `${reason}: connection closed (dlp action deny)`);
      if (passed) {
        tracker.dlpUnscanned(ruleId);
        return;
      }
      tracker.dlpDenied(`${reason} and could not be scanned`);
      tracker.fail(new GatewayError('TG_ERR_DLP_BLOCKED', 'forward', `${reason} and could not be scanned (rule ${ruleId})`));
    },
    onStopped: (reason, kind) => {
      log.info({ request_id: requestId, rule: ruleId, reason }, kind === 'dlp' ? 'WebSocket closed by DLP' : 'WebSocket closed: frames could not be inspected');
      if (kind === 'protocol') tracker.fail(new GatewayError('TG_ERR_UPSTREAM_PROTOCOL', 'forward', `${reason}; the WebSocket was closed because its messages could not be inspected`));
    },
  };
}
