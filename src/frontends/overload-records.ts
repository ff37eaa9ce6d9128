import type { Socket } from 'node:net';
import type { GatewayError } from '../errors/gateway-error';
import { Flow, type FlowServices } from '../flow/flow';
import { runFlow } from '../flow/lifecycle';
import type { Logger } from '../logging/logger';
import type { FrontendKind } from '../policy/types';

/**
 * At most this many connections refused at the connection limits get an audit record per
 * second (per process); docs/audit.md says so. Each refusal also has its log line and counts in
 * `tollgate_limit_breaches_total`, so a flood beyond this is still visible, but it cannot turn
 * the audit file into a write storm.
 */
export const OVERLOAD_RECORDS_PER_SECOND = 100;

/**
 * Connection records for connections refused at `limits.max_connections` and
 * `limits.max_connections_per_client` (503 `TG_ERR_OVERLOADED` on HTTP listeners, a close on the
 * others). Each is a flow of its own, which never reached a front-end: `close: refused`, the
 * error, no target, written when the socket closes. Bounded per second; the refusals left
 * unrecorded in a second are counted in one log line when the second ends.
 */
export class OverloadRecords {
  private windowStart = 0;
  private recorded = 0;
  private unrecorded = 0;
  private report: NodeJS.Timeout | null = null;

  constructor(
    private readonly flows: FlowServices,
    private readonly logger: Logger,
    private readonly perSecond = OVERLOAD_RECORDS_PER_SECOND,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records the refusal of `socket` (unless over this second's budget); called before the reply is written. */
  refused(socket: Socket, frontend: FrontendKind, error: GatewayError): void {
    const now = this.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.recorded = 0;
    }
    if (this.recorded >= this.perSecond) {
      this.unrecorded++;
      this.report ??= setTimeout(() => this.reportUnrecorded(), Math.max(1, this.windowStart + 1000 - now));
      this.report.unref();
      return;
    }
    this.recorded++;
    const flow = new Flow(frontend, socket, this.flows);
    flow.failed(error);
    void runFlow(
      flow,
      () =>
        new Promise((resolve) => {
          const closed = (): void => {
            flow.transferred(socket.bytesRead, socket.bytesWritten);
            resolve('refused');
          };
          if (socket.closed) closed();
          else socket.once('close', closed);
        }),
    );
  }

  /** At shutdown: the refusals not recorded in the current second are logged now, not lost with the timer. */
  close(): void {
    if (this.report) clearTimeout(this.report);
    this.reportUnrecorded();
  }

  private reportUnrecorded(): void {
    this.report = null;
    const count = this.unrecorded;
    this.unrecorded = 0;
    if (count > 0)
      this.logger.warn({ refused: count, per_second: this.perSecond }, `connections refused at the connection limits and not recorded in the audit (over ${this.perSecond} records per second)`);
  }
}
