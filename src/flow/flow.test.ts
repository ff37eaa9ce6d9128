import type { Socket } from 'node:net';
import pino from 'pino';
import type { AuditRecord, ConnectionRecord } from '../audit/record-fields';
import { GatewayError } from '../errors/gateway-error';
import { subscribe } from '../observability/events';
import type { Decision } from '../policy/types';
import { Flow } from './flow';
import { runFlow } from './lifecycle';

const client = { remoteAddress: '::ffff:192.0.2.7', remotePort: 41000 } as unknown as Socket;

function newFlow(records: AuditRecord[]): Flow {
  return new Flow('socks', client, { logger: pino({ level: 'silent' }), audit: { write: (r) => records.push(r) } });
}

const decision: Decision = { action: 'splice', code: 'rule', rule: null, pattern: null, reason: 'test', policyVersion: 'v1' };

describe('a flow: facts in, one record out', () => {
  test('the record carries every fact recorded, with the client address unmapped', async () => {
    const records: AuditRecord[] = [];
    const flow = newFlow(records);
    flow.learnedTarget({ host: { kind: 'name', name: 'example.test' }, port: 443 });
    flow.peeked('tls', { sni: 'example.test', alpn: ['h2'] });
    flow.decided(decision, true);
    flow.connected('198.51.100.1');
    flow.transferred(10, 20);
    await runFlow(flow, async () => 'upstream-closed');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      type: 'connection',
      client: '192.0.2.7',
      client_port: 41000,
      target: 'example.test:443',
      sni: 'example.test',
      alpn: ['h2'],
      first_bytes: 'tls',
      action: 'splice',
      upstream_address: '198.51.100.1',
      bytes_from_client: 10,
      bytes_to_client: 20,
      close: 'upstream-closed',
      error: null,
    } satisfies Partial<ConnectionRecord>);
  });

  test('closing twice is a bug, not a race to ignore', () => {
    const flow = newFlow([]);
    flow.close('client-closed');
    expect(() => flow.close('error')).toThrow(/closed twice/);
  });

  test('a stage that throws closes the flow as error, with the cause on the record', async () => {
    const records: AuditRecord[] = [];
    const flow = newFlow(records);
    await runFlow(flow, async () => {
      throw new GatewayError('TG_ERR_INTERNAL', 'relay', 'boom');
    });
    expect(records[0]).toMatchObject({ close: 'error', error: 'TG_ERR_INTERNAL: boom' });
  });

  test('the first failure is the one recorded', async () => {
    const records: AuditRecord[] = [];
    const flow = newFlow(records);
    flow.failed(new GatewayError('TG_ERR_DNS', 'resolve', 'first'));
    flow.failed(new GatewayError('TG_ERR_INTERNAL', 'relay', 'second'));
    await runFlow(flow, async () => 'refused');
    expect((records[0] as ConnectionRecord).error).toBe('TG_ERR_DNS: first');
  });

  test('a decision is published once: when final, or at close when it never was', async () => {
    const seen: string[] = [];
    const unsubscribe = subscribe('tollgate:flow:decided', (m) => seen.push(`${m.frontend}:${m.action}`));
    try {
      const early = newFlow([]);
      early.decided(decision, false);
      early.decided({ ...decision, action: 'inspect' }, true);
      await runFlow(early, async () => 'client-closed');
      const refused = newFlow([]);
      refused.decided({ ...decision, action: 'deny' }, false);
      await runFlow(refused, async () => 'refused');
    } finally {
      unsubscribe();
    }
    expect(seen).toEqual(['socks:inspect', 'socks:deny']);
  });

  test('request ids count the requests of the connection', () => {
    const flow = newFlow([]);
    expect([flow.nextRequest(), flow.nextRequest()]).toEqual([`${flow.id}-1`, `${flow.id}-2`]);
    expect(flow.requests).toBe(2);
  });
});
