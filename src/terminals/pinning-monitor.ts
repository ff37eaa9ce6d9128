import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logging/logger';
import { writeFileAtomically } from '../sources/atomic-write';

export type PinningMode = 'report' | 'auto_splice';

export interface PinningOptions {
  readonly mode: PinningMode;
  /** Distinct client addresses whose failures are needed before a name counts as pinned. */
  readonly minClients: number;
  /** Failures older than this are forgotten. */
  readonly windowMs: number;
  /** How long an auto-spliced name stays spliced. */
  readonly spliceForMs: number;
  /** Where the current state is written for `tollgate pinning`; null = not written. */
  readonly stateFile: string | null;
  readonly clock?: () => number;
}

/**
 * What a client did with the minted certificate. The `alert-*` signals are rejections: the
 * client said so in a TLS alert, and only they count towards `minClients`. `handshake-aborted`
 * (the client closed or reset before the handshake finished, without an alert) is only
 * observed and reported; see the inspector for why it cannot switch a name.
 */
export type PinningSignal = 'alert-unknown-ca' | 'alert-bad-certificate' | 'alert-certificate-unknown' | 'alert-unsupported-certificate' | 'handshake-aborted';

function isRejection(signal: PinningSignal): boolean {
  return signal !== 'handshake-aborted';
}

export interface PinnedName {
  readonly name: string;
  /** Distinct client addresses that rejected the certificate with an alert, within the window. */
  readonly clients: number;
  /** Every signal seen, aborted handshakes included. */
  readonly failures: number;
  readonly lastSignal: PinningSignal;
  readonly firstSeen: string;
  readonly lastSeen: string;
  /** ISO time until which the name is spliced, when auto-spliced. */
  readonly splicedUntil: string | null;
}

interface NameState {
  /** client address -> time of its last failure */
  readonly clients: Map<string, number>;
  failures: number;
  lastSignal: PinningSignal;
  firstSeen: number;
  lastSeen: number;
  splicedUntil: number | null;
}

const MAX_NAMES = 10_000;
const MAX_CLIENTS_PER_NAME = 64;

/**
 * Certificate-pinning detection. Apps that pin their server certificates reject a minted one
 * during the handshake with an `unknown_ca`, `bad_certificate`, `certificate_unknown` or
 * `unsupported_certificate` alert.
 * Rejections are counted per name and per distinct client address; only when several clients
 * (not one user retrying) reject does a name count as pinned, so one user cannot switch off
 * inspection of a name for everyone. With `auto_splice`, such a name is spliced for a while,
 * only where its rule allows it (never `required`; HTTP rules or DLP only when opted in).
 * A completed handshake is never a signal: the client accepted the certificate.
 */
export class PinningMonitor {
  private readonly names = new Map<string, NameState>();
  private readonly clock: () => number;
  private persistTimer: NodeJS.Timeout | null = null;
  /** Cached result of splicedNames(), valid until the earliest expiry in it. */
  private spliced: ReadonlySet<string> = new Set();
  private splicedValidUntil = Number.POSITIVE_INFINITY;

  constructor(
    private readonly options: PinningOptions,
    private readonly logger: Logger,
    /** Called once when a name is switched to splice (for the audit trail). */
    private readonly onSwitch: (name: string, clients: number, until: Date) => void,
  ) {
    this.clock = options.clock ?? Date.now;
  }

  /**
   * Records one failed interception of `name` by `client`. `autoSpliceAllowed` is what the
   * name's rule says (policy/decide.ts mayAutoSplice); decide() checks it again on every flow.
   */
  record(name: string, client: string, signal: PinningSignal, autoSpliceAllowed: boolean): void {
    const now = this.clock();
    let state = this.names.get(name);
    if (!state) {
      if (this.names.size >= MAX_NAMES) this.evictOldest();
      state = { clients: new Map(), failures: 0, lastSignal: signal, firstSeen: now, lastSeen: now, splicedUntil: null };
      this.names.set(name, state);
    }
    state.failures++;
    state.lastSignal = signal;
    state.lastSeen = now;
    if (!isRejection(signal)) {
      // Debug, not info: scanners and cancelled connections produce these all day.
      this.logger.debug({ name, client, signal }, 'client aborted the TLS handshake without an alert (reported, not counted as a rejection)');
      this.schedulePersist();
      return;
    }
    if (state.clients.size < MAX_CLIENTS_PER_NAME || state.clients.has(client)) state.clients.set(client, now);
    this.forgetOld(state, now);
    const clients = state.clients.size;
    this.logger.info({ name, client, signal, distinct_clients: clients, threshold: this.options.minClients }, 'possible certificate pinning: client rejected the minted certificate');
    if (clients >= this.options.minClients && !this.isSpliced(name)) {
      if (this.options.mode !== 'auto_splice') {
        this.logger.warn({ name, distinct_clients: clients }, 'certificate pinning detected (pinning.mode is report: still inspected)');
      } else if (!autoSpliceAllowed) {
        this.logger.warn(
          { name, distinct_clients: clients },
          'certificate pinning detected, but its rule does not allow auto-splice (required, or HTTP rules or DLP without pinning.auto_splice_allowed): still inspected',
        );
      } else {
        state.splicedUntil = now + this.options.spliceForMs;
        const until = new Date(state.splicedUntil);
        this.splicedValidUntil = 0;
        this.logger.warn({ name, distinct_clients: clients, until: until.toISOString() }, 'certificate pinning detected: splicing this name for a while');
        this.onSwitch(name, clients, until);
      }
    }
    this.schedulePersist();
  }

  /** True while `name` is auto-spliced. */
  isSpliced(name: string): boolean {
    const until = this.names.get(name)?.splicedUntil;
    return until != null && until > this.clock();
  }

  /** Names currently auto-spliced, for decide(); cheap to call on every flow. */
  splicedNames(): ReadonlySet<string> {
    const now = this.clock();
    if (now < this.splicedValidUntil) return this.spliced;
    const out = new Set<string>();
    let validUntil = Number.POSITIVE_INFINITY;
    for (const [name, state] of this.names) {
      if (state.splicedUntil !== null && state.splicedUntil > now) {
        out.add(name);
        validUntil = Math.min(validUntil, state.splicedUntil);
      }
    }
    this.spliced = out;
    this.splicedValidUntil = validUntil;
    return out;
  }

  report(): PinnedName[] {
    const now = this.clock();
    return [...this.names.entries()]
      .map(([name, s]) => ({
        name,
        clients: s.clients.size,
        failures: s.failures,
        lastSignal: s.lastSignal,
        firstSeen: new Date(s.firstSeen).toISOString(),
        lastSeen: new Date(s.lastSeen).toISOString(),
        splicedUntil: s.splicedUntil !== null && s.splicedUntil > now ? new Date(s.splicedUntil).toISOString() : null,
      }))
      .sort((a, b) => b.clients - a.clients || a.name.localeCompare(b.name));
  }

  private forgetOld(state: NameState, now: number): void {
    for (const [client, at] of state.clients) if (now - at > this.options.windowMs) state.clients.delete(client);
  }

  private evictOldest(): void {
    let oldest: string | null = null;
    let at = Number.POSITIVE_INFINITY;
    for (const [name, state] of this.names) {
      if (state.lastSeen < at && !(state.splicedUntil !== null && state.splicedUntil > this.clock())) {
        oldest = name;
        at = state.lastSeen;
      }
    }
    if (oldest !== null) this.names.delete(oldest);
  }

  /** Writes at most once a second: failed handshakes are cheap for a client to cause. */
  private schedulePersist(): void {
    if (!this.options.stateFile || this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = null;
      this.persist();
    }, 1000);
    this.persistTimer.unref();
  }

  /** Writes the state now (also on shutdown). */
  persist(): void {
    const file = this.options.stateFile;
    if (!file) return;
    try {
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileAtomically(file, `${JSON.stringify({ written: new Date(this.clock()).toISOString(), mode: this.options.mode, names: this.report() }, null, 2)}\n`, 0o644);
    } catch (err) {
      this.logger.warn({ err, file }, 'cannot write the pinning state file');
    }
  }
}
