import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** What the holder needs of a connection: its socket (a TLSSocket after the handshake). */
export interface HeldConnection {
  readonly socket: Socket;
}

/**
 * One connection opened ahead of its first request, from the moment it is dialled until a
 * connect() takes it or it expires.
 */
interface Entry<C extends HeldConnection> {
  /** The ALPN protocols it offers (empty: none). */
  readonly offered: readonly string[];
  readonly opening: Promise<C>;
  /** Resolves to the negotiated protocol ('h2', 'http/1.1', false without ALPN), null on failure. */
  readonly outcome: Promise<string | false | null>;
  /** Set once open: the connection and how to stop holding it. */
  ready: { readonly connection: C; readonly release: () => void } | null;
}

/**
 * Connections opened ahead of their first request (Egress.openAhead), held per origin key (host,
 * port, server name, verification) with at most one per ALPN offer, until a connect() that
 * accepts what they negotiated takes them, or `holdMs` passes and they are closed. A connection
 * the origin closes or fails while held is dropped.
 */
export class AheadConnections<C extends HeldConnection> {
  private readonly entries = new Map<string, Entry<C>[]>();

  constructor(private readonly holdMs: number) {}

  /**
   * Holds the connection `open()` starts, unless one with the same offer is already on its way
   * or waiting for this origin: then that one's outcome is shared, nothing new is dialled.
   */
  open(key: string, offered: readonly string[], open: () => Promise<C>): Promise<string | false | null> {
    const existing = this.list(key).find((e) => sameOffer(e.offered, offered));
    if (existing) return existing.outcome;
    const opening = open();
    const entry: Entry<C> = {
      offered,
      opening,
      ready: null,
      outcome: opening.then(
        (connection) => {
          if (this.list(key).includes(entry)) this.hold(key, entry, connection);
          return (connection.socket as TLSSocket).alpnProtocol ?? false;
        },
        () => {
          this.remove(key, entry);
          return null;
        },
      ),
    };
    this.entries.set(key, [...this.list(key), entry]);
    return entry.outcome;
  }

  /** True when a connection with this offer is on its way or waiting for this origin. */
  has(key: string, offered: readonly string[]): boolean {
    return this.list(key).some((e) => sameOffer(e.offered, offered));
  }

  /**
   * A held connection whose protocol `wanted` accepts (an empty list accepts anything); one still
   * opening only if every protocol it offers is accepted. Null: dial a new one.
   */
  take(key: string, wanted: readonly string[]): Promise<C> | null {
    const acceptable = (protocol: string): boolean => wanted.length === 0 || wanted.includes(protocol);
    for (const entry of this.list(key)) {
      if (entry.ready) {
        const socket = entry.ready.connection.socket as TLSSocket;
        if (socket.destroyed || !acceptable(socket.alpnProtocol || 'http/1.1')) continue;
        entry.ready.release();
        return Promise.resolve(entry.ready.connection);
      }
      if (entry.offered.length === 0 ? acceptable('http/1.1') : entry.offered.every(acceptable)) {
        this.remove(key, entry);
        return entry.opening;
      }
    }
    return null;
  }

  private list(key: string): readonly Entry<C>[] {
    return this.entries.get(key) ?? [];
  }

  private remove(key: string, entry: Entry<C>): void {
    const rest = this.list(key).filter((e) => e !== entry);
    if (rest.length > 0) this.entries.set(key, rest);
    else this.entries.delete(key);
  }

  private hold(key: string, entry: Entry<C>, connection: C): void {
    const socket = connection.socket;
    const drop = (): void => {
      release();
      socket.destroy();
    };
    const timer = setTimeout(drop, this.holdMs).unref();
    const release = (): void => {
      clearTimeout(timer);
      socket.removeListener('error', drop);
      socket.removeListener('close', drop);
      socket.removeListener('end', drop);
      this.remove(key, entry);
    };
    socket.once('error', drop);
    socket.once('close', drop);
    socket.once('end', drop);
    entry.ready = { connection, release };
  }
}

function sameOffer(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}
