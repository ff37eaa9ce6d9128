import { EventEmitter } from 'node:events';
import type { ServerHttp2Session } from 'node:http2';
import { type H2HeaderTimeout, watchH2HeaderDeadline } from './h2-header-deadline';

/** Just what the watcher reads of a session: 'stream' and 'close' events, state, destroyed. */
class FakeSession extends EventEmitter {
  destroyed = false;
  lastProcStreamID = 0;
  get state(): { lastProcStreamID: number } {
    return { lastProcStreamID: this.lastProcStreamID };
  }
  /** nghttp2 has read the frame header of a HEADERS frame for `id`. */
  begin(id: number): void {
    this.lastProcStreamID = id;
  }
  /** The header block of `id` is complete: Node emits 'stream'. */
  deliver(id: number): void {
    this.lastProcStreamID = Math.max(this.lastProcStreamID, id);
    this.emit('stream', { id });
  }
}

const TIMEOUT_MS = 1000;

function watch(session: FakeSession): H2HeaderTimeout[] {
  const fired: H2HeaderTimeout[] = [];
  watchH2HeaderDeadline(session as unknown as ServerHttp2Session, TIMEOUT_MS, (t) => fired.push(t));
  return fired;
}

describe('HTTP/2 header deadline', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('a session without any request is ended header_timeout after it started', () => {
    const session = new FakeSession();
    const fired = watch(session);
    jest.advanceTimersByTime(TIMEOUT_MS - 1);
    expect(fired).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(fired).toEqual([{ reason: 'no HTTP/2 request header block was completed after the TLS handshake', lastStreamId: 0 }]);
    jest.advanceTimersByTime(10 * TIMEOUT_MS);
    expect(fired).toHaveLength(1);
  });

  test('a header block begun and never completed ends the session within header_timeout, open streams or not', () => {
    const session = new FakeSession();
    const fired = watch(session);
    session.deliver(1);
    jest.advanceTimersByTime(5 * TIMEOUT_MS);
    expect(fired).toEqual([]);
    session.begin(3);
    jest.advanceTimersByTime(TIMEOUT_MS);
    expect(fired).toEqual([{ reason: 'the header block of HTTP/2 stream 3 was not completed', lastStreamId: 1 }]);
  });

  test('a block that is in progress at one check and complete at the next is a request like any other', () => {
    const session = new FakeSession();
    const fired = watch(session);
    session.deliver(1);
    session.begin(3);
    jest.advanceTimersByTime(TIMEOUT_MS / 2);
    session.deliver(3);
    session.begin(5);
    jest.advanceTimersByTime(TIMEOUT_MS / 2);
    session.deliver(5);
    jest.advanceTimersByTime(20 * TIMEOUT_MS);
    expect(fired).toEqual([]);
  });

  test('a served session left idle is left to the idle timeout', () => {
    const session = new FakeSession();
    const fired = watch(session);
    jest.advanceTimersByTime(TIMEOUT_MS / 2);
    session.deliver(1);
    jest.advanceTimersByTime(100 * TIMEOUT_MS);
    expect(fired).toEqual([]);
  });

  test('nothing fires once the session is closed or destroyed', () => {
    const closed = new FakeSession();
    const destroyed = new FakeSession();
    const firedClosed = watch(closed);
    const firedDestroyed = watch(destroyed);
    closed.emit('close');
    destroyed.destroyed = true;
    jest.advanceTimersByTime(10 * TIMEOUT_MS);
    expect(firedClosed).toEqual([]);
    expect(firedDestroyed).toEqual([]);
    expect(jest.getTimerCount()).toBe(0);
  });
});
