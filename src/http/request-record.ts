import type { DlpAuditEntry, RequestRecord, TlsSummary } from '../audit/record-fields';
import type { Redactor } from '../audit/redact';
import { requestRecord } from '../audit/records';
import type { RecordWriter } from '../audit/sink';
import type { OriginTlsFacts } from '../egress/origin-tls';
import type { GatewayError } from '../errors/gateway-error';
import { shutdownError } from '../flow/flow';
import { type Refusal, refusalCode, writeHttpRefusal } from '../errors/refusal';
import { publish } from '../observability/events';
import { targetText } from '../protocol/target';
import { hostText } from '../protocol/host';
import type { CacheExchange } from './cache/http-cache';
import { type Enforcement, type EnforcementAudit, NO_ENFORCEMENT_AUDIT } from './enforcement';
import { type InboundRequest, type InboundResponse, withoutPseudoHeaders } from './inbound';
import type { RequestContext } from './request-context';

/** Where request records go, and what they redact. */
export interface RecordOptions {
  readonly audit: RecordWriter;
  readonly redactor: Redactor;
}

/** Collects what the audit record of one request needs, and writes it once. */
export class RequestTracker {
  private readonly start = performance.now();
  private up = 0;
  private down = 0;
  private error: GatewayError | null = null;
  private originCert: string | null = null;
  private upstreamTls: TlsSummary | null = null;
  private respHeaders: readonly string[] | null = null;
  private statusOverride: number | null = null;
  private closeNote: string | null = null;
  private done = false;
  /** DLP on an upgraded (WebSocket) connection's messages: what it found and decided. */
  private readonly wsFindings: DlpAuditEntry[] = [];
  private wsFlag: string | null = null;
  private wsDenied: string | null = null;
  cache: CacheExchange | null = null;
  private readonly recorded: () => void;

  constructor(
    private readonly ctx: RequestContext,
    private readonly req: InboundRequest,
    private readonly res: InboundResponse,
    private readonly options: RecordOptions,
    private readonly rules: Enforcement,
  ) {
    // A SIGTERM drain waits for this record (and writes it, should the request never end).
    this.recorded = ctx.flow.requestStarted(() => this.finish());
  }

  countUp(bytes: number): void {
    this.up += bytes;
  }

  countDown(bytes: number): void {
    this.down += bytes;
  }

  get bytesDown(): number {
    return this.down;
  }

  /** What the record's `error` says when nothing failed but the exchange did not complete. */
  note(text: string): void {
    this.closeNote ??= text;
  }

  fail(error: GatewayError): void {
    // Once the shutdown has cut the flow, what fails next (the origin leg torn down, a pool
    // closed) is the cut's doing, not the origin's.
    this.error ??= this.ctx.flow.isCutByShutdown ? shutdownError() : error;
  }

  originTls(facts: OriginTlsFacts | null): void {
    if (!facts) return;
    this.originCert = facts.certSha256;
    this.upstreamTls = facts.tls;
  }

  responseHeaders(raw: readonly string[]): void {
    this.respHeaders = raw;
  }

  /** A DLP finding in a WebSocket message; report-only findings flag the record `<rule>/dlp`. */
  dlpFinding(entry: DlpAuditEntry, ruleId: string): void {
    this.wsFindings.push(entry);
    if (entry.action === 'log') this.wsFlag ??= `${ruleId}/dlp`;
  }

  /** A WebSocket message passed on unscanned (larger than the scan bound, `action: log`). */
  dlpUnscanned(ruleId: string): void {
    this.wsFlag ??= `${ruleId}/dlp`;
  }

  /** DLP closed the WebSocket: the record says `action: deny`, `decision_code: dlp`, and why. */
  dlpDenied(reason: string): void {
    this.wsDenied ??= reason;
  }

  private rulesAudit(): EnforcementAudit {
    const audit = this.rules.audit();
    if (this.wsFindings.length === 0 && this.wsFlag === null && this.wsDenied === null) return audit;
    return {
      ...audit,
      flaggedBy: this.wsFlag && !audit.flaggedBy.includes(this.wsFlag) ? [...audit.flaggedBy, this.wsFlag] : audit.flaggedBy,
      dlp: [...(audit.dlp ?? []), ...this.wsFindings],
      denied: audit.denied ?? (this.wsDenied === null ? null : { code: 'dlp', reason: this.wsDenied }),
    };
  }

  /** An upgraded exchange ended: one record for the whole WebSocket, with the bytes relayed. */
  finishUpgraded(status: number, bytesUp: number, bytesDown: number, close: string): void {
    this.statusOverride = status;
    this.up += bytesUp;
    this.down += bytesDown;
    if (close === 'error' || close === 'timeout') this.closeNote = `upgraded connection ended: ${close}`;
    this.finish();
  }

  finish(): void {
    if (this.done) return;
    this.done = true;
    const { ctx, req, res } = this;
    // An HTTP/2 response whose stream the client reset counts as finished (Node sets
    // writableFinished), though it was never ended: both say it went out whole.
    const aborted = this.statusOverride === null && (!res.writableEnded || !res.writableFinished) && this.error === null;
    const status = this.statusOverride ?? (res.headersSent ? res.statusCode : 0);
    const durationMs = Math.round((performance.now() - this.start) * 1000) / 1000;
    const cache = this.cache?.outcome ?? null;
    const record = buildRequestRecord(ctx, req, {
      status,
      bytesFromClient: this.up,
      bytesToClient: this.down,
      durationMs,
      error: this.error ? `${this.error.code}: ${this.error.message}` : (this.closeNote ?? (aborted ? abortNote(ctx) : null)),
      upstreamCertSha256: this.originCert,
      upstreamTls: this.upstreamTls,
      responseHeaders: this.respHeaders,
      redactor: this.options.redactor,
      cache,
      rules: this.rulesAudit(),
    });
    publishCompleted(record);
    this.options.audit.write(record);
    this.recorded();
  }
}

/** Why a response did not complete when nothing failed: the client left, or the gateway's shutdown cut it. */
function abortNote(ctx: RequestContext): string {
  if (!ctx.flow.isCutByShutdown) return 'client closed before the response completed';
  const error = shutdownError();
  return `${error.code}: ${error.message}`;
}

function publishCompleted(record: RequestRecord): void {
  publish('tollgate:request:completed', {
    scheme: record.scheme,
    status: record.status,
    durationMs: record.duration_ms,
    cache: record.cache,
    action: record.action,
    decisionCode: record.decision_code,
    rule: record.rule,
    httpRule: record.http_rule,
  });
}

export interface RequestOutcome {
  readonly status: number;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
  readonly durationMs: number;
  readonly error: string | null;
  readonly upstreamCertSha256: string | null;
  readonly upstreamTls: TlsSummary | null;
  readonly responseHeaders: readonly string[] | null;
  readonly redactor: Redactor;
  /** The cache outcome (CacheOutcome: hit, miss, revalidated, stale, stale-while-revalidate, bypass); null when no cache took part. */
  readonly cache?: string | null;
  /** HTTP rules and DLP outcome; absent = no rules applied. */
  readonly rules?: EnforcementAudit;
}

/** HTTP/2's :authority, else Host; bounded, since it is written into every record. */
function presentedAuthority(req: InboundRequest): string | null {
  const value = req.headers[':authority'] ?? req.headers.host;
  return typeof value === 'string' ? value.slice(0, 300) : null;
}

function buildRequestRecord(ctx: RequestContext, req: InboundRequest, outcome: RequestOutcome): RequestRecord {
  const { flow } = ctx;
  // An HTTP rule or DLP that denied the exchange decided it: the record says deny, and why.
  const denied = outcome.rules?.denied;
  const decision = denied ? { ...ctx.decision, action: 'deny', code: denied.code, reason: denied.reason } : ctx.decision;
  return requestRecord({
    requestId: ctx.requestId,
    flowId: flow.id,
    frontend: flow.frontend,
    clientAddress: flow.clientAddress,
    clientPort: flow.clientPort,
    user: ctx.principal?.user ?? null,
    scheme: ctx.scheme,
    host: hostText(ctx.target.host),
    port: ctx.target.port,
    sni: ctx.clientSni,
    authority: presentedAuthority(req),
    method: req.method ?? '',
    path: outcome.redactor.target(req.url ?? ''),
    httpVersion: req.httpVersion,
    decision,
    status: outcome.status,
    bytesFromClient: outcome.bytesFromClient,
    bytesToClient: outcome.bytesToClient,
    durationMs: outcome.durationMs,
    error: outcome.error,
    cache: outcome.cache ?? null,
    upstreamCertSha256: outcome.upstreamCertSha256,
    clientTls: ctx.clientTls,
    upstreamTls: outcome.upstreamTls,
    requestHeaders: outcome.redactor.headerObject(withoutPseudoHeaders(req.rawHeaders)),
    responseHeaders: outcome.responseHeaders ? outcome.redactor.headerObject(outcome.responseHeaders) : null,
    httpRule: outcome.rules?.httpRule ?? null,
    flaggedBy: outcome.rules?.flaggedBy ?? [],
    dlp: outcome.rules?.dlp ?? null,
  });
}

/** Answers a request the gateway refuses itself (policy, malformed) and audits it. */
export function refuseRequest(
  ctx: RequestContext,
  req: InboundRequest,
  res: InboundResponse,
  refusal: Refusal,
  records: RecordOptions,
  extraHeaders: Record<string, string> = {},
  rules: EnforcementAudit = NO_ENFORCEMENT_AUDIT,
): void {
  const start = performance.now();
  const origin = `${ctx.scheme}://${targetText(ctx.target)}`;
  ctx.flow.log.info({ request_id: ctx.requestId, origin, code: refusalCode(refusal) }, 'request refused');
  // Drain whatever body the client sends so the connection can be reused for its next request.
  req.resume();
  const sent = writeHttpRefusal(res, refusal, ctx.requestId, origin, extraHeaders);
  const record = buildRequestRecord(ctx, req, {
    status: res.statusCode,
    bytesFromClient: 0,
    bytesToClient: sent,
    durationMs: Math.round((performance.now() - start) * 1000) / 1000,
    error: refusal.kind === 'error' ? `${refusal.error.code}: ${refusal.error.message}` : null,
    upstreamCertSha256: null,
    upstreamTls: null,
    responseHeaders: null,
    redactor: records.redactor,
    rules,
  });
  records.audit.write(record);
  publishCompleted(record);
}
