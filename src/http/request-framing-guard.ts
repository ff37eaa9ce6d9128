import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { RequestFramingTracker } from '../protocol/request-framing';

/** What the guard found wrong with a connection's bytes; the caller answers 400 (431 if tooLarge). */
export interface FramingViolation {
  readonly reason: string;
  readonly tooLarge: boolean;
}

export interface RequestFramingGuardOptions {
  /** The server's `maxHeaderSize` (http.max_header_size). */
  readonly maxHeaderBytes: number;
}

/**
 * Node counts the target, field names and values against maxHeaderSize, not the method,
 * version, separators or line ends; a line longer than the limit by more than those is over it
 * for Node too (431 either way), so the tracker's own bound never refuses what Node accepts.
 */
const LINE_OVERHEAD_BYTES = 64;

/**
 * Answers a connection whose bytes broke HTTP/1 request framing, and closes it. Called once,
 * when the responses already owed to earlier requests on the connection have ended, so the
 * refusal is never read as the answer to one of them; or at once on a socket already destroyed
 * (nothing can be answered in order), for the log line.
 */
export type FramingRefusal = (socket: Socket, violation: FramingViolation) => void;

type DataListener = (chunk: Buffer) => void;

/**
 * Puts a RequestFramingTracker (protocol/request-framing.ts) between every connection of the
 * HTTP/1 server `server` and Node's parser, so that a request line Node would accept but RFC
 * 9112 does not (`GET  /path HTTP/1.1`) is refused before the parser sees it.
 *
 * A listener prepended to 'data' would see each chunk first but could not stop Node's own
 * listener from parsing that same chunk (an emit calls a copy of its listener list). So the
 * parser's 'data' listener, which Node's 'connection' handler adds, is taken off the socket
 * and called from ours, with the chunks the tracker let through. Adding our listener also
 * makes Node stop reading the socket in C++ ('consume') so that every byte passes through JS.
 * Measured on a bare http.Server: about 4 µs of CPU per chunk for that, and 1.5 µs for the
 * tracker on a typical 530-byte head (O(1) per body chunk); through the explicit proxy, a few
 * per cent of a plain request's cost.
 *
 * The tracker stops at CONNECT by itself (Node switches protocols there whatever the head
 * says) and at an 'upgrade' event (the server switched). Must be called before listen() or
 * before sockets are handed to the server with emit('connection'), and every server it guards
 * must handle 'upgrade' (our 'upgrade' listener would otherwise make Node treat Upgrade
 * requests as upgrades nobody serves).
 */
export function guardRequestFraming(server: Server, options: RequestFramingGuardOptions, refuse: FramingRefusal): void {
  const guards = new WeakMap<Socket, ConnectionGuard>();
  server.prependListener('upgrade', (_req: unknown, socket: Socket) => {
    guards.get(socket)?.stop();
    // Only our listener: nothing would serve this upgrade, and Node has let go of the socket.
    if (server.listenerCount('upgrade') === 1) socket.destroy();
  });
  server.prependListener('request', (req: { socket: Socket }, res: ServerResponse) => guards.get(req.socket)?.onRequest(res));
  const handlers = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    const before = new Set(socket.listeners('data'));
    for (const handler of handlers) handler.call(server, socket);
    const parserInput = (socket.listeners('data') as DataListener[]).filter((listener) => !before.has(listener));
    if (parserInput.length === 0) {
      // Node read this socket some other way (in C++, or with 'readable'): its bytes would
      // reach the parser unchecked. Fail closed; every test of an HTTP listener would show it.
      socket.destroy();
      return;
    }
    for (const listener of parserInput) socket.removeListener('data', listener);
    const guard = new ConnectionGuard(socket, parserInput, new RequestFramingTracker({ maxLineBytes: options.maxHeaderBytes + LINE_OVERHEAD_BYTES }), refuse);
    guards.set(socket, guard);
    socket.on('data', guard.onData);
  });
}

/** Whether a response has been sent in full or will never be ('close' has been or is being emitted). */
function isDone(res: ServerResponse): boolean {
  return res.writableFinished || res.destroyed;
}

class ConnectionGuard {
  private stopped = false;
  private violation: FramingViolation | null = null;
  private refused = false;
  /**
   * The responses to the last two requests Node parsed. HTTP/1 answers in order, so when the
   * last one has finished every earlier one has too; nothing is counted per request beyond
   * these two references (a listener per response measured at several µs per request).
   */
  private lastResponse: ServerResponse | null = null;
  private previousResponse: ServerResponse | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly parserInput: readonly DataListener[],
    private readonly tracker: RequestFramingTracker,
    private readonly refuse: FramingRefusal,
  ) {}

  readonly onData = (chunk: Buffer): void => {
    if (this.violation) return;
    const result = this.tracker.push(chunk);
    if (result.kind === 'invalid') {
      // Nothing of this chunk reaches the parser, not even requests before the bad line: the
      // connection is refused as a whole, and later bytes are dropped.
      this.violation = { reason: result.reason, tooLarge: result.tooLarge === true };
      const last = this.lastResponse;
      if (last === null || isDone(last)) this.refuseOnce();
      else if (this.tracker.failedInBody) {
        // The request whose body broke is already with the forwarder and will never end, so
        // waiting for its response would wait for a timeout. If it is the only one owed and
        // has not begun its answer, the refusal is that answer (as when Node's parser finds a
        // broken chunk); otherwise nothing can be answered in order: close.
        const earlierOwed = this.previousResponse !== null && !isDone(this.previousResponse);
        if (earlierOwed || last.headersSent) this.socket.destroy();
        this.refuseOnce();
      } else last.once('close', () => this.refuseOnce());
      return;
    }
    for (const listener of this.parserInput) listener.call(this.socket, chunk);
    // After CONNECT the rest of the stream belongs to the tunnel, which reads the socket itself.
    if (result.kind === 'parsed') this.stop();
  };

  onRequest(res: ServerResponse): void {
    this.previousResponse = this.lastResponse;
    this.lastResponse = res;
  }

  private refuseOnce(): void {
    if (!this.violation || this.refused) return;
    this.refused = true;
    this.refuse(this.socket, this.violation);
  }

  /** The server switched protocols: the bytes from here on are not HTTP/1 and not ours. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.socket.removeListener('data', this.onData);
  }
}
