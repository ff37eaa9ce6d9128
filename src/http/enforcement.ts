import { type Readable, Transform, type TransformCallback } from 'node:stream';
import type { DlpAuditEntry } from '../audit/record-fields';
import { GatewayError } from '../errors/gateway-error';
import type { Refusal } from '../errors/refusal';
import { publish } from '../observability/events';
import type { PolicyRule } from '../policy/types';
import type { DlpFinding } from '../policy/dlp/dlp-types';
import { createDlpScanner, DlpMatch } from '../policy/dlp/scanner';
import { createDecodedScanner, type UploadView, UploadUninspectable, uploadView } from './upload-views';
import { type InboundRequest, withoutPseudoHeaders } from './inbound';
import {
  applyHeaderEdits,
  contentLengthOf,
  evaluateRequest,
  evaluateResponse,
  mediaTypeOf,
  requestFacts,
  ruleTarget,
  type PendingLimit,
  type RequestEvaluation,
  type RequestFacts,
} from '../policy/rules/evaluate';
import type { HeaderEdits, HttpRule } from '../policy/rules/rule-types';

/**
 * Carries the HTTP rules' outcome through one exchange: what the request phase decided, what
 * the response phase adds, and what the audit record says (the rule that allowed or denied, the
 * report-only rules that matched).
 */
class RuleOutcome {
  /** The rule whose allow or deny decided, if any. */
  decidedBy: HttpRule | null = null;
  /** Report-only (`log`) rules that matched. */
  readonly flaggedBy: string[] = [];
  private readonly responseEdits: HeaderEdits[];

  private constructor(
    private readonly evaluation: RequestEvaluation,
    readonly facts: RequestFacts,
  ) {
    this.responseEdits = [...evaluation.responseEdits];
    this.flaggedBy.push(...evaluation.logged);
    if (evaluation.verdict) this.decidedBy = evaluation.verdict.rule;
  }

  /** `path` is the canonical path and `query` the raw query (evaluate.ts ruleTarget). */
  static forRequest(rules: readonly HttpRule[], req: InboundRequest, path: string, query: string): RuleOutcome {
    // No Content-Length: unknown (HTTP/2 bodies need none), so size limits count the body as
    // it streams; a request without a body never crosses them.
    const length = req.headers['transfer-encoding'] ? null : contentLengthOf(req.headers['content-length'] as string | undefined);
    const facts = requestFacts(req.method ?? 'GET', path, query, withoutPseudoHeaders(req.rawHeaders), length);
    return new RuleOutcome(evaluateRequest(rules, facts), facts);
  }

  /** The request-phase deny, if any. */
  get denial(): HttpRule | null {
    return this.evaluation.verdict?.action === 'deny' ? this.evaluation.verdict.rule : null;
  }

  get isAllowed(): boolean {
    return this.evaluation.verdict?.action === 'allow';
  }

  requestHeaders(rawHeaders: readonly string[]): string[] {
    return applyHeaderEdits(rawHeaders, this.evaluation.requestEdits);
  }

  /** Request-body size limits that must be counted while the body streams. */
  get requestBodyLimits(): readonly PendingLimit[] {
    return this.isAllowed ? [] : this.evaluation.pendingBody;
  }

  /**
   * The response phase. Returns the denying rule, or null with header edits and body limits
   * recorded for the caller.
   */
  respond(status: number, rawHeaders: readonly string[]): { denial: HttpRule | null; headers: string[]; bodyLimits: readonly PendingLimit[] } {
    if (this.isAllowed || this.evaluation.responseRules.length === 0) {
      return { denial: null, headers: applyHeaderEdits(rawHeaders, this.responseEdits), bodyLimits: [] };
    }
    const result = evaluateResponse(this.evaluation.responseRules, {
      status,
      contentType: mediaTypeOf(headerValue(rawHeaders, 'content-type')),
      contentLength: contentLengthOf(headerValue(rawHeaders, 'content-length')),
    });
    this.flaggedBy.push(...result.logged);
    this.responseEdits.push(...result.responseEdits);
    if (result.verdict) this.decidedBy = result.verdict.rule;
    return {
      denial: result.verdict?.action === 'deny' ? result.verdict.rule : null,
      headers: applyHeaderEdits(rawHeaders, this.responseEdits),
      bodyLimits: result.pendingBody,
    };
  }
}

function headerValue(rawHeaders: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === lowerName) return rawHeaders[i + 1];
  return undefined;
}

/** Raised by a body-size guard when a `deny` limit is crossed. */
class BodyLimitExceeded extends Error {
  override readonly name = 'BodyLimitExceeded';
  constructor(readonly rule: HttpRule) {
    super(`body larger than allowed by HTTP rule ${rule.id}`);
  }
}

/**
 * Counts a streaming body against size limits decided while it flows: a `log` limit flags the
 * outcome once crossed; a `deny` limit stops the stream before the chunk that crosses it is
 * passed on. Only the bytes counter is kept; chunks pass through untouched.
 */
function createBodyLimitGuard(limits: readonly PendingLimit[], outcome: RuleOutcome): Transform {
  let seen = 0;
  const pending = [...limits].sort((a, b) => a.limit - b.limit);
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      seen += chunk.length;
      while (pending.length > 0 && seen > pending[0]!.limit) {
        const { rule } = pending.shift()!;
        if (rule.action === 'deny') {
          outcome.decidedBy = rule;
          callback(new BodyLimitExceeded(rule));
          return;
        }
        if (rule.action === 'log') outcome.flaggedBy.push(rule.id);
      }
      callback(null, chunk);
    },
  });
}

/** What the audit record of one request says about rules and DLP. */
export interface EnforcementAudit {
  readonly httpRule: string | null;
  readonly flaggedBy: readonly string[];
  readonly dlp: readonly DlpAuditEntry[] | null;
  /** Set when an HTTP rule or DLP denied the exchange: the record then says `action: deny`. */
  readonly denied: { readonly code: 'http_rule' | 'dlp'; readonly reason: string } | null;
}

export const NO_ENFORCEMENT_AUDIT: EnforcementAudit = Object.freeze({ httpRule: null, flaggedBy: [], dlp: null, denied: null });

function ruleRefusal(rule: HttpRule, fallback: string): Refusal {
  return { kind: 'http-deny', ruleId: rule.id, reason: rule.reason ?? fallback };
}

/** A stage that passes the upload on and notes, at its first byte, that DLP could not read it. */
function noteUninspectable(note: () => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      note();
      callback(null, chunk);
    },
  });
}

/** A stage that refuses the upload at its first byte: DLP in deny mode cannot read it. */
function refuseUninspectable(reason: string): Transform {
  return new Transform({
    transform(_chunk: Buffer, _encoding, callback) {
      callback(new UploadUninspectable(reason));
    },
  });
}

/**
 * Everything the forwarding path does for HTTP rules and DLP on one exchange, in order:
 *   1. request phase (`refusal`, `requestHeaders`) before anything leaves the gateway (and
 *      before a cache lookup);
 *   2. `requestBody`: size limits and DLP counted while the upload streams;
 *   3. `response`: response rules when the origin's headers arrive (before a cache store);
 *   4. `responseBody`: response size limits while the body streams;
 *   5. `audit`: the fields of the request record.
 * A destination without HTTP rules or DLP costs one object and no stream stages.
 */
export class Enforcement {
  private readonly outcome: RuleOutcome | null = null;
  /** Why the path could not be matched safely (rules/path.ts); the request is refused. */
  private readonly ambiguousPath: string | null = null;
  private readonly findings: DlpAuditEntry[] = [];
  private readonly dlpFlag: string[] = [];
  /** What DLP reads of the upload besides its bytes as sent (upload-views.ts). */
  private readonly view: UploadView;

  private constructor(
    private readonly rule: PolicyRule | null,
    req: InboundRequest,
  ) {
    this.view = rule?.dlp ? uploadView(req.rawHeaders) : { kind: 'raw' };
    if (!rule || rule.http.length === 0) return;
    const target = ruleTarget(req.url ?? '/', { allowEncodedSlashes: rule.allowEncodedSlashes });
    if (target.ok) this.outcome = RuleOutcome.forRequest(rule.http, req, target.path, target.query);
    else this.ambiguousPath = target.reason;
  }

  static begin(rule: PolicyRule | null, req: InboundRequest): Enforcement {
    return new Enforcement(rule, req);
  }

  /** The request-phase deny (403), or a path the rules cannot judge (400): nothing is sent upstream. */
  get refusal(): Refusal | null {
    if (this.ambiguousPath !== null) {
      const message = `${this.ambiguousPath}; refused because HTTP rules of ${this.rule?.id ?? '?'} match paths${this.ambiguousPath.includes('slash') ? ' (allow_encoded_slashes on the rule keeps them)' : ''}`;
      return { kind: 'error', error: new GatewayError('TG_ERR_BAD_REQUEST', 'parse', message) };
    }
    const rule = this.outcome?.denial;
    return rule ? ruleRefusal(rule, `HTTP rule ${rule.id} denies this request`) : null;
  }

  requestHeaders(rawHeaders: readonly string[]): readonly string[] {
    return this.outcome ? this.outcome.requestHeaders(rawHeaders) : rawHeaders;
  }

  /**
   * The request body as it should reach the origin: through the size guard and the DLP scanner
   * when the rules need them. `onCut` is called once if either stops the upload.
   */
  requestBody(body: Readable, onCut: (refusal: Refusal) => void): Readable {
    let stream: Readable = body;
    const limits = this.outcome?.requestBodyLimits ?? [];
    const stages: Transform[] = [];
    if (limits.length > 0 && this.outcome) stages.push(createBodyLimitGuard(limits, this.outcome));
    const dlp = this.rule?.dlp;
    // DLP is not an HTTP rule: an `allow` ends the rules, but uploads are still scanned.
    if (dlp) {
      const ruleId = this.rule!.id;
      const scanning = {
        detectors: dlp.detectors,
        stopOnFirst: dlp.action === 'deny',
        onFinding: (finding: DlpFinding) => {
          // The bytes as sent and their decoded view often hold the same match at the same offset.
          if (this.findings.some((f) => f.detector === finding.detector && f.offset === finding.offset)) return;
          this.findings.push({ detector: finding.detector, offset: finding.offset, action: dlp.action });
          if (dlp.action === 'log' && !this.dlpFlag.includes(`${ruleId}/dlp`)) this.dlpFlag.push(`${ruleId}/dlp`);
          publish('tollgate:dlp:matched', { detector: finding.detector, action: dlp.action });
        },
      };
      stages.push(createDlpScanner(scanning));
      // Compressed or form-encoded uploads are also scanned as the server will read them.
      const view = this.view;
      // Report-only DLP that cannot read an upload says so in the record (flagged_by).
      const uninspectable = (): void => {
        if (!this.dlpFlag.includes(`${ruleId}/dlp-uninspectable`)) this.dlpFlag.push(`${ruleId}/dlp-uninspectable`);
      };
      if (view.kind === 'decoded') stages.push(createDecodedScanner({ ...scanning, view, onUninspectable: uninspectable }));
      else if (view.kind === 'unscannable') stages.push(dlp.action === 'deny' ? refuseUninspectable(view.reason) : noteUninspectable(uninspectable));
    }
    this.inspectsUpload = stages.length > 0;
    let cut = false;
    for (const stage of stages) {
      stage.on('error', (err: Error) => {
        if (cut) return;
        cut = true;
        body.unpipe();
        if (err instanceof BodyLimitExceeded) onCut(ruleRefusal(err.rule, `request body larger than HTTP rule ${err.rule.id} allows`));
        else if (err instanceof DlpMatch) onCut({ kind: 'error', error: new GatewayError('TG_ERR_DLP_BLOCKED', 'forward', `${err.message} (rule ${this.rule?.id ?? '?'})`) });
        else if (err instanceof UploadUninspectable) {
          onCut({ kind: 'error', error: new GatewayError('TG_ERR_DLP_BLOCKED', 'forward', `upload refused: DLP cannot inspect it: ${err.message} (rule ${this.rule?.id ?? '?'})`) });
        } else onCut({ kind: 'error', error: new GatewayError('TG_ERR_INTERNAL', 'forward', err.message) });
      });
      stream = stream.pipe(stage);
    }
    return stream;
  }

  /** Whether the upload passes through a size guard or DLP (set by `requestBody`). */
  inspectsUpload = false;

  /** Response rules on the origin's status and headers; headers to send when not denied. */
  response(status: number, rawHeaders: readonly string[]): { refusal: Refusal | null; headers: readonly string[] } {
    if (!this.outcome) return { refusal: null, headers: rawHeaders };
    const result = this.outcome.respond(status, rawHeaders);
    this.responseLimits = result.bodyLimits;
    const refusal = result.denial ? ruleRefusal(result.denial, `HTTP rule ${result.denial.id} denies this response`) : null;
    return { refusal, headers: result.headers };
  }

  private responseLimits: readonly PendingLimit[] = [];

  /** The response body through the size guard when a limit must be counted; `onCut` on deny. */
  responseBody(body: Readable, onCut: () => void): Readable {
    if (this.responseLimits.length === 0 || !this.outcome) return body;
    const guard = createBodyLimitGuard(this.responseLimits, this.outcome);
    guard.on('error', () => {
      body.unpipe();
      onCut();
    });
    return body.pipe(guard);
  }

  audit(): EnforcementAudit {
    if (!this.outcome && this.findings.length === 0 && !this.rule?.dlp) return NO_ENFORCEMENT_AUDIT;
    const decided = this.outcome?.decidedBy ?? null;
    const blocked = this.findings.find((f) => f.action === 'deny');
    const denied =
      decided?.action === 'deny'
        ? { code: 'http_rule' as const, reason: decided.reason ?? `HTTP rule ${decided.id} denies this request` }
        : blocked
          ? { code: 'dlp' as const, reason: `the upload matched the DLP detector ${blocked.detector} at byte ${blocked.offset}` }
          : null;
    return {
      httpRule: decided?.id ?? null,
      flaggedBy: [...(this.outcome?.flaggedBy ?? []), ...this.dlpFlag],
      dlp: this.rule?.dlp ? [...this.findings] : null,
      denied,
    };
  }
}
