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
  /**
   * Observations shared by the replicas of a fleet (state.redis): rejections are counted over
   * every replica, and a name switched by one is spliced by all. Null: this process alone.
   */
  readonly ledger?: PinningLedger | null;
  /** How often the names spliced fleet-wide are fetched from the ledger. */
  readonly syncIntervalMs?: number;
}

/**
 * Pinning observations shared by the replicas of a fleet. Each call may fail (the store is
 * unreachable): detection is then report-only until it answers again.
 */
export interface PinningLedger {
  /** Records a rejection of `name` by `client`; resolves with the distinct clients that rejected it fleet-wide within the window. */
  observe(name: string, client: string): Promise<number>;
  /**
   * Claims switching `name` to splice for the configured time. `claimed`: this replica switched it
   * (and audits the switch); otherwise another replica already had, until `until` (epoch ms).
   * Null when the ledger holds as many spliced names as it may.
   */
  claimSplice(name: string): Promise<{ readonly claimed: boolean; readonly until: number } | null>;
  /** Names spliced fleet-wide now, with the epoch ms at which each ends. */
  splicedNames(): Promise<ReadonlyMap<string, number>>;
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
const DEFAULT_SYNC_INTERVAL_MS = 5_000;

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
  private readonly ledger: PinningLedger | null;
  private syncTimer: NodeJS.Timeout | null = null;
  /** Whether the last call to the ledger failed (report-only until one succeeds). */
  private ledgerDown = false;

  constructor(
    private readonly options: PinningOptions,
    private readonly logger: Logger,
    /** Called once when a name is switched to splice (for the audit trail; once per fleet with a ledger). */
    private readonly onSwitch: (name: string, clients: number, until: Date) => void,
  ) {
    this.clock = options.clock ?? Date.now;
    this.ledger = options.ledger ?? null;
    if (this.ledger) {
      this.syncTimer = setInterval(() => void this.sync(), options.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS);
      this.syncTimer.unref();
    }
  }

  /** Stops fetching the fleet's spliced names. */
  stop(): void {
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.syncTimer = null;
  }

  /** Fetches the names spliced fleet-wide (by whichever replica switched them). */
  async sync(): Promise<void> {
    if (!this.ledger) return;
    let names: ReadonlyMap<string, number>;
    try {
      names = await this.ledger.splicedNames();
    } catch (err) {
      this.noteLedgerDown(err);
      return;
    }
    this.noteLedgerUp();
    const now = this.clock();
    for (const [name, until] of names) {
      if (until <= now) continue;
      const state = this.stateOf(name, 'alert-unknown-ca', now);
      if (state.splicedUntil === null || state.splicedUntil < until) {
        state.splicedUntil = until;
        this.splicedValidUntil = 0;
      }
    }
  }

  /**
   * Records one failed interception of `name` by `client`. `autoSpliceAllowed` is what the
   * name's rule says (policy/decide.ts mayAutoSplice); decide() checks it again on every flow.
   */
  record(name: string, client: string, signal: PinningSignal, autoSpliceAllowed: boolean): void {
    const now = this.clock();
    const state = this.stateOf(name, signal, now);
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
    this.schedulePersist();
    if (!this.ledger) {
      this.judge(name, client, signal, state.clients.size, autoSpliceAllowed, false);
      return;
    }
    this.ledger.observe(name, client).then(
      (clients) => {
        this.noteLedgerUp();
        this.judge(name, client, signal, clients, autoSpliceAllowed, false);
      },
      (err: unknown) => {
        this.noteLedgerDown(err);
        // What this replica saw alone, reported only: a switch is the fleet's decision.
        this.judge(name, client, signal, state.clients.size, autoSpliceAllowed, true);
      },
    );
  }

  private stateOf(name: string, signal: PinningSignal, now: number): NameState {
    let state = this.names.get(name);
    if (!state) {
      if (this.names.size >= MAX_NAMES) this.evictOldest();
      state = { clients: new Map(), failures: 0, lastSignal: signal, firstSeen: now, lastSeen: now, splicedUntil: null };
      this.names.set(name, state);
    }
    return state;
  }

  /** `clients`: distinct rejecting clients (fleet-wide with a ledger). `reportOnly`: the ledger is unreachable. */
  private judge(name: string, client: string, signal: PinningSignal, clients: number, autoSpliceAllowed: boolean, reportOnly: boolean): void {
    this.logger.info({ name, client, signal, distinct_clients: clients, threshold: this.options.minClients }, 'possible certificate pinning: client rejected the minted certificate');
    if (clients < this.options.minClients || this.isSpliced(name)) return;
    if (this.options.mode !== 'auto_splice') {
      this.logger.warn({ name, distinct_clients: clients }, 'certificate pinning detected (pinning.mode is report: still inspected)');
    } else if (!autoSpliceAllowed) {
      this.logger.warn(
        { name, distinct_clients: clients },
        'certificate pinning detected, but its rule does not allow auto-splice (required, or HTTP rules or DLP without pinning.auto_splice_allowed): still inspected',
      );
    } else if (reportOnly) {
      this.logger.warn({ name, distinct_clients: clients }, 'certificate pinning detected, but the state store is unreachable: report-only, still inspected');
    } else if (this.ledger) {
      this.ledger.claimSplice(name).then(
        (claim) => {
          if (!claim) {
            this.logger.warn({ name, distinct_clients: clients }, 'certificate pinning detected, but the fleet already splices as many names as it may: still inspected');
            return;
          }
          this.spliceUntil(name, claim.until);
          if (claim.claimed) this.switched(name, clients, claim.until);
        },
        (err: unknown) => this.noteLedgerDown(err),
      );
    } else {
      this.switched(name, clients, this.clock() + this.options.spliceForMs);
    }
  }

  private spliceUntil(name: string, until: number): void {
    const state = this.stateOf(name, 'alert-unknown-ca', this.clock());
    state.splicedUntil = Math.max(state.splicedUntil ?? 0, until);
    this.splicedValidUntil = 0;
    this.schedulePersist();
  }

  private switched(name: string, clients: number, untilMs: number): void {
    this.spliceUntil(name, untilMs);
    const until = new Date(untilMs);
    this.logger.warn({ name, distinct_clients: clients, until: until.toISOString() }, 'certificate pinning detected: splicing this name for a while');
    this.onSwitch(name, clients, until);
  }

  private noteLedgerDown(err: unknown): void {
    if (this.ledgerDown) return;
    this.ledgerDown = true;
    this.logger.warn({ err }, 'pinning detection: the state store is unreachable; report-only until it answers (names already spliced stay spliced)');
  }

  private noteLedgerUp(): void {
    if (!this.ledgerDown) return;
    this.ledgerDown = false;
    this.logger.info('pinning detection: the state store answers again; switching by fleet-wide counts resumes');
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
