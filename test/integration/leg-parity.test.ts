import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { FAULTS, type Fault, type FaultOrigin, faultPki, startFaultOrigin } from './support/fault-origin';
import { connectTunnel, h2Session } from './support/h2-client';

/**
 * Leg parity: an inspected request reaches its origin over HTTP/1.1 (an HTTP/1.1 client) or
 * over a pooled HTTP/2 session (an HTTP/2 client of an h2 origin). The same origin fault must
 * look the same through either leg: to the client (status and x-tollgate-reason, or a transfer
 * cut once the response started), in the request's audit record (status, error code) and in
 * the limit-breach log lines of its flow.
 *
 * Every fault origin speaks h2 and http/1.1, so the leg is chosen by the client alone. Faults
 * before HTTP (refused, connect-stall, certificates) would also fail the gateway's ALPN probe,
 * after which an h2 client is served over HTTP/1.1 and the "h2 leg" would be the HTTP/1.1 leg
 * again. So each origin is probed while healthy (an h2 handshake through the gateway; the
 * answer is cached for minutes) and only then armed: the h2 column is what an HTTP/2 client
 * meets when an origin it was probed as speaking h2 fails later.
 *
 * Jest runs the gateway in a vm context of its own, where errors that Node itself creates (a
 * socket's ECONNREFUSED, a certificate failure) are not `instanceof Error`: error classification
 * has to look at `code`, not at the prototype chain, or it classifies differently here.
 */

const NAME = 'faulty.test';
// connect < response < origin idle < client idle, so each deadline is the first to run out in
// its own case (the ALPN probe also runs under connect_timeout, so it is not cut too fine for a
// busy machine).
const CONNECT_TIMEOUT_MS = 1000;
const RESPONSE_TIMEOUT_MS = 1500;
const ORIGIN_IDLE_TIMEOUT_MS = 2500;
const CLIENT_IDLE_TIMEOUT_MS = 60_000;
/** Longer than the deadlines above: a deadline that never fires shows as a late, whole answer. */
const TIMINGS = { headersDelayMs: 4000, bodyStallMs: 5500 };
/** How long a client waits for its whole answer before it calls the exchange hung. */
const CLIENT_BOUND_MS = 9000;

/** What one request through one leg came to. */
interface Answer {
  /**
   * `502 TG_ERR_X` (status and x-tollgate-reason); `200, then cut` when the transfer that started
   * did not complete (connection reset or closed, HTTP/2 stream reset); `..., then hung`; or
   * `no response (...)`.
   */
  readonly client: string;
  /** Request records written for the request (exactly one is expected). */
  readonly records: number;
  readonly status: number | null;
  /** The record's error code (TG_ERR_...), else its error text, null when none. */
  readonly error: string | null;
  /** limit-breach log lines of the request's flow, by configuration key. */
  readonly breaches: readonly string[];
}

type Leg = 'h1' | 'h2';

const refused = (status: number, code: string): Answer => ({ client: `${status} ${code}`, records: 1, status, error: code, breaches: [] });

/**
 * What both legs should answer. 502/504 and the codes follow the catalogue (errors/refusal.ts);
 * once the response head went out, the client must see the transfer cut, and the record must
 * still name the origin's failure (not the client) as its cause.
 */
const EXPECTED: Readonly<Record<Fault, Answer>> = {
  refused: refused(502, 'TG_ERR_UPSTREAM_REFUSED'),
  'connect-stall': { ...refused(504, 'TG_ERR_UPSTREAM_TIMEOUT'), breaches: ['upstream.connect_timeout'] },
  'reset-mid-headers': refused(502, 'TG_ERR_UPSTREAM_PROTOCOL'),
  'reset-mid-body': { client: '200, then cut', records: 1, status: 200, error: 'TG_ERR_UPSTREAM_PROTOCOL', breaches: [] },
  'slow-headers': { ...refused(504, 'TG_ERR_UPSTREAM_TIMEOUT'), breaches: ['upstream.response_timeout'] },
  // A body that stops flowing is the origin's fault: upstream.idle_timeout cuts it, on either leg.
  'slow-body': { client: '200, then cut', records: 1, status: 200, error: 'TG_ERR_UPSTREAM_TIMEOUT', breaches: ['upstream.idle_timeout'] },
  'untrusted-cert': refused(502, 'TG_ERR_UPSTREAM_CERT'),
  'wrong-host-cert': refused(502, 'TG_ERR_UPSTREAM_CERT'),
  // Not a fault: a response with more header fields than Node's HTTP/2 client takes by default.
  'many-header-fields': { client: '200', records: 1, status: 200, error: null, breaches: [] },
};

describe('origin faults look the same through the HTTP/1.1 and the HTTP/2 origin leg', () => {
  let gw: TestGateway;
  let ca: string;
  const origins = new Map<Fault, FaultOrigin>();
  const observed = new Map<Fault, Promise<{ h1: Answer; h2: Answer; alpn: Record<Leg, string> }>>();

  beforeAll(async () => {
    const pki = faultPki(NAME);
    for (const fault of FAULTS) origins.set(fault, await startFaultOrigin(fault, pki, TIMINGS));
    const ports = [...origins.values()].map((o) => o.port);
    gw = await startTestGateway({
      allowedPorts: { tunnel: ports, http: [80] },
      policies: { 'faults.yaml': `rules:\n  - name: faulty\n    match: ${NAME}\n    action: inspect\n` },
      upstreamSection: [
        'upstream:',
        `  hosts:\n    ${NAME}: 127.0.0.1`,
        '  allow_addresses: [127.0.0.0/8]',
        `  ca_file: ${pki.caFile}`,
        `  connect_timeout: ${CONNECT_TIMEOUT_MS}ms`,
        `  response_timeout: ${RESPONSE_TIMEOUT_MS}ms`,
        `  idle_timeout: ${ORIGIN_IDLE_TIMEOUT_MS}ms`,
      ].join('\n'),
      extraConfig: `limits:\n  client_idle_timeout: ${CLIENT_IDLE_TIMEOUT_MS}ms`,
    });
    ca = readFileSync(gw.caFile, 'utf8');
  });

  afterAll(async () => {
    await gw?.stop();
    for (const origin of origins.values()) await origin.close();
  });

  const head = (status: number | string | undefined, reason: string | string[] | undefined): string => (reason === undefined ? `${status}` : `${status} ${reason}`);

  /** HTTP/1.1 through a CONNECT tunnel (ALPN http/1.1 only): the gateway's HTTP/1.1 origin leg. */
  async function askH1(port: number, path: string): Promise<{ client: string; alpn: string }> {
    const tunnel = await connectTunnel(gw.explicitPort, `${NAME}:${port}`);
    const secure = tls.connect({ socket: tunnel, servername: NAME, ALPNProtocols: ['http/1.1'], ca });
    await once(secure, 'secureConnect');
    const alpn = String(secure.alpnProtocol);
    secure.on('error', () => undefined);
    return new Promise((resolve) => {
      let started: string | null = null;
      const finish = (client: string): void => {
        clearTimeout(timer);
        secure.destroy();
        resolve({ client, alpn });
      };
      const timer = setTimeout(() => finish(started ? `${started}, then hung` : `no response within ${CLIENT_BOUND_MS} ms`), CLIENT_BOUND_MS);
      const req = http.request({ createConnection: () => secure, path, headers: { host: `${NAME}:${port}` } });
      req.on('response', (res) => {
        started = head(res.statusCode, res.headers['x-tollgate-reason']);
        res.resume();
        res.on('error', () => undefined);
        res.on('close', () => finish(res.complete ? started! : `${started}, then cut`));
      });
      req.on('error', () => finish(started ? `${started}, then cut` : 'no response (closed)'));
      req.end();
    });
  }

  /** HTTP/2 through a CONNECT tunnel (ALPN h2): the gateway's HTTP/2 origin leg. */
  async function askH2(port: number, path: string): Promise<{ client: string; alpn: string }> {
    const { session, alpn } = await h2Session(gw.explicitPort, NAME, port, ca);
    return new Promise((resolve) => {
      let started: string | null = null;
      let ended = false;
      const finish = (client: string): void => {
        clearTimeout(timer);
        session.destroy();
        resolve({ client, alpn: String(alpn) });
      };
      const timer = setTimeout(() => finish(started ? `${started}, then hung` : `no response within ${CLIENT_BOUND_MS} ms`), CLIENT_BOUND_MS);
      const stream = session.request({ ':path': path });
      stream.on('response', (h) => (started = head(h[':status'], h['x-tollgate-reason'])));
      stream.on('end', () => (ended = true));
      stream.on('error', () => undefined);
      stream.resume();
      // Node ends the readable side of a reset stream too: only NO_ERROR means complete.
      stream.on('close', () => finish(started ? (ended && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR ? started : `${started}, then cut`) : 'no response (closed)'));
      stream.end();
    });
  }

  /** The request's audit record(s) and its flow's limit-breach log lines. */
  async function audited(path: string): Promise<Omit<Answer, 'client'>> {
    const records = await eventually(
      () => gw.requestRecords(path),
      (r) => r.length > 0,
      5000,
    );
    const record = records[0];
    if (!record) return { records: 0, status: null, error: null, breaches: [] };
    const error = record.error === null ? null : (/^TG_ERR_[A-Z_]+/.exec(record.error)?.[0] ?? record.error);
    const breaches = gw
      .logs()
      .filter((line) => line.flow_id === record.flow_id && typeof line.limit === 'string')
      .map((line) => String(line.limit));
    return { records: records.length, status: record.status, error, breaches: [...new Set(breaches)].sort() };
  }

  async function ask(leg: Leg, fault: Fault, port: number): Promise<{ answer: Answer; alpn: string }> {
    const path = `/${fault}/${leg}`;
    const { client, alpn } = await (leg === 'h1' ? askH1 : askH2)(port, path);
    return { answer: { client, ...(await audited(path)) }, alpn };
  }

  /** Probes the healthy origin through the gateway, arms the fault, then asks through both legs. */
  function observe(fault: Fault): Promise<{ h1: Answer; h2: Answer; alpn: Record<Leg, string> }> {
    let pending = observed.get(fault);
    if (!pending) {
      pending = (async () => {
        const origin = origins.get(fault)!;
        const warm = await h2Session(gw.explicitPort, NAME, origin.port, ca);
        warm.session.destroy();
        await origin.arm();
        const h1 = await ask('h1', fault, origin.port);
        const h2 = await ask('h2', fault, origin.port);
        return { h1: h1.answer, h2: h2.answer, alpn: { h1: h1.alpn, h2: h2.alpn } };
      })();
      observed.set(fault, pending);
    }
    return pending;
  }

  test.each(FAULTS)(
    '%s: the HTTP/1.1 and HTTP/2 legs give the same answer',
    async (fault) => {
      const { h1, h2, alpn } = await observe(fault);
      // Each client took the leg its column names (h2 only because the probe found h2).
      expect(alpn).toEqual({ h1: 'http/1.1', h2: 'h2' });
      expect(h2).toEqual(h1);
    },
    60_000,
  );

  test.each(FAULTS)(
    '%s: both legs give the expected answer',
    async (fault) => {
      const { h1, h2 } = await observe(fault);
      expect({ h1, h2 }).toEqual({ h1: EXPECTED[fault], h2: EXPECTED[fault] });
    },
    60_000,
  );
});
