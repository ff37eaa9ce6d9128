import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import pino from 'pino';
import type { AuditRecord, ConnectionRecord } from '../audit/record-fields';
import { Flow } from './flow';
import { runFlow } from './lifecycle';
import { OpenFlows } from './open-flows';

/** A stand-in for a client socket: destroy() emits 'close' on a later turn, or never (a stuck socket). */
class FakeSocket extends EventEmitter {
  readonly remoteAddress = '192.0.2.7';
  readonly remotePort = 41000;
  bytesRead = 120;
  bytesWritten = 3400;
  destroyed = false;
  constructor(private readonly closes: boolean) {
    super();
  }
  destroy(): this {
    this.destroyed = true;
    if (this.closes) setImmediate(() => this.emit('close'));
    return this;
  }
}

function openFlow(open: OpenFlows, records: AuditRecord[], closes: boolean): { flow: Flow; socket: FakeSocket; done: Promise<void> } {
  const socket = new FakeSocket(closes);
  const flow = new Flow('socks', socket as unknown as Socket, { logger: pino({ level: 'silent' }), audit: { write: (r) => records.push(r) }, open });
  const done = runFlow(flow, () => new Promise((resolve) => socket.once('close', () => resolve('client-reset'))));
  return { flow, socket, done };
}

describe('open flows at the end of a drain', () => {
  test('a flow registers itself and leaves when it closes', async () => {
    const open = new OpenFlows();
    const records: AuditRecord[] = [];
    const { socket, done } = openFlow(open, records, true);
    expect(open.size).toBe(1);
    socket.destroy();
    await done;
    expect(open.size).toBe(0);
    expect((records[0] as ConnectionRecord).close).toBe('client-reset');
  });

  test('cut flows are recorded as shutdown, whatever their stages saw, and settled() waits for them', async () => {
    const open = new OpenFlows();
    const records: AuditRecord[] = [];
    const a = openFlow(open, records, true);
    const b = openFlow(open, records, true);
    expect(open.cutAll()).toBe(2);
    expect(a.socket.destroyed && b.socket.destroyed).toBe(true);
    expect(records).toHaveLength(0);
    expect(await open.settled(1000)).toBe(0);
    expect(records.map((r) => (r as ConnectionRecord).close)).toEqual(['shutdown', 'shutdown']);
    expect((records[0] as ConnectionRecord).error).toMatch(/^TG_ERR_SHUTTING_DOWN: /);
  });

  test('a refused flow cut at shutdown stays refused', async () => {
    const open = new OpenFlows();
    const records: AuditRecord[] = [];
    const socket = new FakeSocket(true);
    const flow = new Flow('socks', socket as unknown as Socket, { logger: pino({ level: 'silent' }), audit: { write: (r) => records.push(r) }, open });
    open.cutAll();
    await runFlow(flow, async () => 'refused');
    expect((records[0] as ConnectionRecord).close).toBe('refused');
  });

  test('a flow whose socket never closes has its record written after the bound, once', async () => {
    const open = new OpenFlows();
    const records: AuditRecord[] = [];
    const stuck = openFlow(open, records, false);
    open.cutAll();
    const started = Date.now();
    expect(await open.settled(50)).toBe(1);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(records).toEqual([expect.objectContaining({ close: 'shutdown', bytes_from_client: 120, bytes_to_client: 3400 })]);
    // Its stages ending later write nothing more and throw nothing.
    stuck.socket.emit('close');
    await stuck.done;
    expect(records).toHaveLength(1);
    expect(open.size).toBe(0);
  });

  test('settled() also waits for the records of requests begun, and writes those that never end', async () => {
    const open = new OpenFlows();
    const written: string[] = [];
    const done = open.requestStarted(() => written.push('finished'));
    setTimeout(() => {
      written.push('recorded');
      done();
    }, 20);
    expect(await open.settled(1000)).toBe(0);
    expect(written).toEqual(['recorded']);
    let recordedLate: () => void = () => undefined;
    recordedLate = open.requestStarted(() => {
      written.push('forced');
      recordedLate();
    });
    expect(await open.settled(30)).toBe(0);
    expect(written).toEqual(['recorded', 'forced']);
  });
});
