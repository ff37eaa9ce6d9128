import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import pino from 'pino';
import type { AuditRecord, ConnectionRecord } from '../audit/record-fields';
import { GatewayError } from '../errors/gateway-error';
import { TLS_ALERT_ACCESS_DENIED, type Refusal } from '../errors/refusal';
import { Flow } from '../flow/flow';
import { runFlow } from '../flow/lifecycle';
import { compilePolicy } from '../policy/load-policy';
import type { ClientHello } from '../protocol/client-hello';
import type { Peek } from '../protocol/first-bytes';
import { normaliseHost } from '../protocol/host';
import type { Target } from '../protocol/target';
import type { RelayResult } from '../relay/relay';
import { type SpliceLeg, type TunnelDeps, runTunnel } from './tunnel';

/**
 * The tunnel state machine as transcripts: a target and the client's first bytes in, the
 * front-end's reply, what was dialled, which terminal ran and the connection record out. The
 * dialer, peeker, relay and inspector are fakes, so every path (deny, splice, inspect, SNI
 * stricter-wins, fronting, peek timeout, dial refusal and failure) runs without a socket.
 */

const POLICY = compilePolicy(
  [
    {
      name: 'p.yaml',
      displayPath: 'policies/p.yaml',
      text: `rules:
  - name: spliced
    match: [splice.example, other-splice.example]
    action: splice
  - name: inspected
    match: [inspect.example, other-inspect.example]
    action: inspect
  - name: spliced-net
    match: 198.51.100.0/24
    action: splice
  - name: denied
    match: deny.example
    action: deny
    reason: not here
  - name: spliced-any
    match: any-splice.example
    action: splice
    non_tls: splice
  - name: inspected-any
    match: any-inspect.example
    action: inspect
    non_tls: splice
`,
    },
  ],
  { defaultAction: 'deny', allowedPorts: { tunnel: [443], http: [80] } },
);

/** A client socket as the tunnel sees it: what was written, ended, put back, destroyed. */
class FakeClient extends EventEmitter {
  destroyed = false;
  writable = true;
  remoteAddress = '192.0.2.1';
  remotePort = 50000;
  ended: Buffer | null = null;
  unshifted: Buffer[] = [];
  end(data?: Buffer): void {
    this.ended = data ?? Buffer.alloc(0);
    this.writable = false;
  }
  destroy(): void {
    this.destroyed = true;
  }
  unshift(bytes: Buffer): void {
    this.unshifted.push(bytes);
  }
}

class FakeSplice implements SpliceLeg {
  readonly calls: string[] = [];
  hasSentDownstream = false;
  constructor(private readonly outcome: RelayResult) {}
  startDownstream(): void {
    this.calls.push('downstream');
  }
  startUpstream(replay: Buffer, clientEnded: boolean): void {
    this.calls.push(`upstream ${replay.toString('latin1')}${clientEnded ? ' +fin' : ''}`);
  }
  detachUpstream(): void {
    this.calls.push('detach');
  }
  abort(kind: string): void {
    this.calls.push(`abort ${kind}`);
  }
  result(): Promise<RelayResult> {
    return Promise.resolve(this.outcome);
  }
}

function hello(sni: string | null): ClientHello {
  return { sni, alpn: ['h2', 'http/1.1'], legacyVersion: 0x0303, supportedVersions: [0x0304], hasEncryptedClientHello: false, recordBytes: 5 };
}

const tls = (sni: string | null): Peek => ({ kind: 'tls', hello: hello(sni), bytes: Buffer.from('HELLO') });

function target(name: string, port = 443): Target {
  const host = normaliseHost(name);
  if (!host.ok) throw new Error(host.reason);
  return { host: host.host, port };
}

interface Transcript {
  readonly replies: string[];
  readonly dialled: string[];
  readonly inspected: string[];
  readonly client: FakeClient;
  readonly splice: FakeSplice;
  readonly record: ConnectionRecord;
  /** The time limit each peek was given (null: none). */
  readonly peekTimeouts: (number | null)[];
}

interface Scenario {
  readonly target: string;
  readonly peek: Peek;
  /** What dialling does: connect, refuse (a GatewayError), or time out. */
  readonly dial?: 'ok' | GatewayError;
  readonly check?: 'ok' | GatewayError;
  readonly relay?: RelayResult;
  readonly originSpokeFirst?: boolean;
  /** The origin greeted while the client was silent (the peek returns an empty timeout). */
  readonly serverFirst?: boolean;
}

async function transcript(scenario: Scenario): Promise<Transcript> {
  const records: AuditRecord[] = [];
  const client = new FakeClient();
  const splice = new FakeSplice(scenario.relay ?? { close: 'client-closed', bytesUp: 5, bytesDown: 7 });
  splice.hasSentDownstream = scenario.originSpokeFirst === true;
  const replies: string[] = [];
  const dialled: string[] = [];
  const inspected: string[] = [];
  const peekTimeouts: (number | null)[] = [];
  const originSpoke = new AbortController();
  if (scenario.serverFirst) originSpoke.abort();
  const deps: TunnelDeps = {
    policy: () => POLICY,
    autoSpliced: () => new Set(),
    dial: async (t) => {
      dialled.push(`${JSON.stringify(t.host)}:${t.port}`);
      if (scenario.dial && scenario.dial !== 'ok') throw scenario.dial;
      return { leg: splice, address: '198.51.100.7', originSpoke: originSpoke.signal };
    },
    check: async () => {
      if (scenario.check && scenario.check !== 'ok') throw scenario.check;
    },
    peek: async (_client, _initial, timeout, signal) => {
      peekTimeouts.push(timeout);
      return signal?.aborted ? { kind: 'timeout', bytes: Buffer.alloc(0) } : scenario.peek;
    },
    cleartext: {
      serve: async (flow) => {
        inspected.push(`cleartext ${flow.target!.port}`);
        return 'client-closed';
      },
    },
    serverFirstWaitMs: 0,
    inspector: {
      inspect: async (_flow, _client, peek) => {
        inspected.push(peek.hello.sni ?? '(none)');
        return 'client-closed';
      },
    },
    peekTimeoutMs: 1000,
    idleTimeoutMs: 5000,
    connectTimeoutMs: 2000,
  };
  const flow = new Flow('explicit-connect', client as unknown as Socket, { logger: pino({ level: 'silent' }), audit: { write: (r) => records.push(r) } });
  flow.learnedTarget(target(scenario.target));
  await runFlow(flow, () =>
    runTunnel(
      flow,
      client as unknown as Socket,
      Buffer.alloc(0),
      { accept: () => replies.push('accept'), refuse: (refusal: Refusal) => replies.push(`refuse ${refusal.kind === 'error' ? refusal.error.code : refusal.kind}`) },
      deps,
    ),
  );
  expect(records).toHaveLength(1);
  return { replies, dialled, inspected, client, splice, record: records[0] as ConnectionRecord, peekTimeouts };
}

describe('the tunnel state machine, as transcripts', () => {
  test('a denied target is refused before anything is dialled or peeked', async () => {
    const t = await transcript({ target: 'deny.example', peek: tls('deny.example') });
    expect(t.replies).toEqual(['refuse deny']);
    expect(t.dialled).toEqual([]);
    expect(t.record).toMatchObject({ action: 'deny', rule: 'denied', close: 'refused', sni: null });
  });

  test('splice: dialled before the reply, origin relayed at once, peeked bytes replayed', async () => {
    const t = await transcript({ target: 'splice.example', peek: tls('splice.example') });
    expect(t.replies).toEqual(['accept']);
    expect(t.dialled).toHaveLength(1);
    expect(t.splice.calls).toEqual(['downstream', 'upstream HELLO']);
    expect(t.record).toMatchObject({ action: 'splice', sni: 'splice.example', first_bytes: 'tls', upstream_address: '198.51.100.7', bytes_from_client: 5, bytes_to_client: 7, close: 'client-closed' });
  });

  test('inspect: the destination is checked, not dialled, and the ClientHello goes to the inspector', async () => {
    const t = await transcript({ target: 'inspect.example', peek: tls('inspect.example') });
    expect(t.replies).toEqual(['accept']);
    expect(t.dialled).toEqual([]);
    expect(t.inspected).toEqual(['inspect.example']);
    expect(t.client.unshifted.map((b) => b.toString())).toEqual(['HELLO']);
    expect(t.record).toMatchObject({ action: 'inspect', rule: 'inspected', sni: 'inspect.example' });
  });

  test('SNI stricter wins: a denied server name inside a spliced tunnel ends with an alert', async () => {
    const t = await transcript({ target: 'splice.example', peek: tls('deny.example') });
    expect(t.replies).toEqual(['accept']);
    expect(t.splice.calls).toEqual(['detach']);
    expect(t.client.ended).toEqual(TLS_ALERT_ACCESS_DENIED);
    expect(t.record).toMatchObject({ action: 'deny', decision_code: 'sni', close: 'refused' });
  });

  test('an inspected server name under a spliced target is refused as fronting (one name per inspected flow)', async () => {
    const t = await transcript({ target: 'splice.example', peek: tls('inspect.example') });
    expect(t.inspected).toEqual([]);
    expect(t.splice.calls).toContain('detach');
    expect(t.record).toMatchObject({ action: 'deny', decision_code: 'fronting', close: 'refused' });
  });

  test('a spliced server name under another spliced target keeps the target decision', async () => {
    const t = await transcript({ target: 'splice.example', peek: tls('other-splice.example') });
    expect(t.splice.calls).toEqual(['downstream', 'upstream HELLO']);
    expect(t.record).toMatchObject({ action: 'splice', rule: 'spliced', decision_code: 'rule' });
  });

  test('an address target with an inspected server name switches from splice to inspection', async () => {
    const t = await transcript({ target: '198.51.100.9', peek: tls('inspect.example') });
    expect(t.splice.calls).toEqual(['detach']);
    expect(t.inspected).toEqual(['inspect.example']);
    expect(t.record).toMatchObject({ action: 'inspect', decision_code: 'sni', rule: 'inspected', upstream_address: null });
  });

  test('... unless the origin already spoke: the tunnel is refused (its bytes cannot be taken back)', async () => {
    const t = await transcript({ target: '198.51.100.9', peek: tls('inspect.example'), originSpokeFirst: true });
    expect(t.inspected).toEqual([]);
    expect(t.client.ended).toEqual(TLS_ALERT_ACCESS_DENIED);
    expect(t.record).toMatchObject({ action: 'inspect', close: 'refused' });
  });

  test('peek timeout on an inspected tunnel: accepted, then closed without bytes, recorded', async () => {
    const t = await transcript({ target: 'inspect.example', peek: { kind: 'timeout', bytes: Buffer.alloc(0) } });
    expect(t.replies).toEqual(['accept']);
    expect(t.inspected).toEqual([]);
    expect(t.client.ended).toEqual(Buffer.alloc(0));
    expect(t.record).toMatchObject({ action: 'inspect', first_bytes: 'none', close: 'refused' });
  });

  test('peek timeout on a spliced tunnel: limits.peek_timeout bounds it too; the origin leg is let go, recorded', async () => {
    const t = await transcript({ target: 'splice.example', peek: { kind: 'timeout', bytes: Buffer.alloc(0) } });
    expect(t.peekTimeouts).toEqual([1000]);
    expect(t.replies).toEqual(['accept']);
    expect(t.splice.calls).toContain('detach');
    expect(t.record).toMatchObject({ action: 'splice', first_bytes: 'none', close: 'refused' });
    expect(t.record.error).toMatch(/^TG_ERR_CLIENT_TIMEOUT: no bytes from the client within 1000 ms/);
  });

  test('cleartext HTTP in a tunnel to an inspected destination goes to the cleartext terminal, bytes put back', async () => {
    const t = await transcript({ target: 'inspect.example', peek: { kind: 'opaque', firstBytes: 'http', bytes: Buffer.from('GET / HTTP/1.1\r\n') } });
    expect(t.inspected).toEqual(['cleartext 443']);
    expect(t.dialled).toEqual([]);
    expect(t.client.unshifted.map((b) => b.toString())).toEqual(['GET / HTTP/1.1\r\n']);
    expect(t.record).toMatchObject({ action: 'inspect', first_bytes: 'http', close: 'client-closed' });
  });

  test('cleartext HTTP in a spliced tunnel is relayed untouched', async () => {
    const t = await transcript({ target: 'splice.example', peek: { kind: 'opaque', firstBytes: 'http', bytes: Buffer.from('GET / HTTP/1.1\r\n') } });
    expect(t.splice.calls).toEqual(['downstream', 'upstream GET / HTTP/1.1\r\n']);
    expect(t.record).toMatchObject({ action: 'splice', first_bytes: 'http' });
  });

  test('bytes that are neither TLS nor HTTP: non_tls defaults to deny, and the record says so', async () => {
    const t = await transcript({ target: 'splice.example', peek: { kind: 'opaque', firstBytes: 'other', bytes: Buffer.from('SSH-2.0-x\r\n') } });
    expect(t.splice.calls).toEqual(['detach']);
    expect(t.record).toMatchObject({ action: 'deny', rule: 'spliced', first_bytes: 'other', close: 'refused' });
    expect(t.record.reason).toMatch(/non_tls: deny/);
  });

  test('non_tls: splice relays them, on a spliced rule', async () => {
    const t = await transcript({ target: 'any-splice.example', peek: { kind: 'opaque', firstBytes: 'other', bytes: Buffer.from('SSH-2.0-x\r\n') } });
    expect(t.splice.calls).toEqual(['downstream', 'upstream SSH-2.0-x\r\n']);
    expect(t.record).toMatchObject({ action: 'splice', first_bytes: 'other' });
  });

  test('non_tls: splice on an inspect rule dials the origin after the peek and relays', async () => {
    const t = await transcript({ target: 'any-inspect.example', peek: { kind: 'opaque', firstBytes: 'other', bytes: Buffer.from('\x00\x01') } });
    expect(t.dialled).toHaveLength(1);
    expect(t.splice.calls).toEqual(['downstream', 'upstream \x00\x01']);
    expect(t.record).toMatchObject({ action: 'inspect', first_bytes: 'other', upstream_address: '198.51.100.7' });
  });

  test('an origin that greets a silent client (server-first): non_tls deny by default', async () => {
    const t = await transcript({ target: 'splice.example', peek: tls('splice.example'), serverFirst: true });
    expect(t.splice.calls).toEqual(['detach']);
    expect(t.record).toMatchObject({ action: 'deny', first_bytes: 'none', close: 'refused' });
    expect(t.record.reason).toMatch(/origin spoke first/);
  });

  test('... and relayed, greeting first, with non_tls: splice', async () => {
    const t = await transcript({ target: 'any-splice.example', peek: tls('any-splice.example'), serverFirst: true });
    expect(t.splice.calls).toEqual(['downstream', 'upstream ']);
    expect(t.record).toMatchObject({ action: 'splice', first_bytes: 'none' });
  });

  test("dial refusal (the destination guard) is answered in the front-end's protocol and recorded", async () => {
    const error = new GatewayError('TG_ERR_DESTINATION_FORBIDDEN', 'resolve', '10.0.0.1 is in a private range');
    const t = await transcript({ target: 'splice.example', peek: tls('splice.example'), dial: error });
    expect(t.replies).toEqual(['refuse TG_ERR_DESTINATION_FORBIDDEN']);
    expect(t.record).toMatchObject({ action: 'splice', close: 'refused', error: `TG_ERR_DESTINATION_FORBIDDEN: ${error.message}` });
  });

  test('dial failure (timeout) is answered, recorded, and no terminal runs', async () => {
    const error = new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', 'connect', 'connecting timed out after 2000 ms');
    const t = await transcript({ target: 'splice.example', peek: tls('splice.example'), dial: error });
    expect(t.replies).toEqual(['refuse TG_ERR_UPSTREAM_TIMEOUT']);
    expect(t.splice.calls).toEqual([]);
    expect(t.record.error).toMatch(/^TG_ERR_UPSTREAM_TIMEOUT/);
  });

  test('an inspected destination that may not be reached is refused before the reply', async () => {
    const error = new GatewayError('TG_ERR_DNS', 'resolve', 'cannot resolve inspect.example');
    const t = await transcript({ target: 'inspect.example', peek: tls('inspect.example'), check: error });
    expect(t.replies).toEqual(['refuse TG_ERR_DNS']);
    expect(t.inspected).toEqual([]);
  });

  test('a client that half-closes while peeked has its FIN passed on after the replay', async () => {
    const t = await transcript({ target: 'splice.example', peek: { kind: 'closed', bytes: Buffer.from('GET') } });
    expect(t.splice.calls).toEqual(['downstream', 'upstream GET +fin']);
    expect(t.record.first_bytes).toBe('other');
  });

  test("the relay's idle timeout is the flow's close", async () => {
    const t = await transcript({ target: 'splice.example', peek: tls('splice.example'), relay: { close: 'timeout', bytesUp: 5, bytesDown: 0 } });
    expect(t.record.close).toBe('timeout');
  });
});
