import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { applyHeaderEdits, contentLengthOf, evaluateRequest, evaluateResponse, mediaTypeOf, requestFacts, type PendingLimit, type RequestEvaluation, type RequestFacts } from './evaluate';
import type { HeaderEdits, HttpRule } from './types';

/**
 * Carries the HTTP rules' outcome through one exchange: what the request phase decided, what
 * the response phase adds, and what the audit record says (the rule that allowed or denied, the
 * report-only rules that matched).
 */
export class RuleOutcome {
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

  static forRequest(rules: readonly HttpRule[], req: IncomingMessage): RuleOutcome {
    const facts = requestFacts(req.method ?? 'GET', req.url ?? '/', req.rawHeaders, req.headers['transfer-encoding'] ? null : (contentLengthOf(req.headers['content-length']) ?? 0));
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
export class BodyLimitExceeded extends Error {
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
export function createBodyLimitGuard(limits: readonly PendingLimit[], outcome: RuleOutcome): Transform {
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
