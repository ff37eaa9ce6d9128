import net from 'node:net';
import { curl } from './support/run';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';

/**
 * The HTTP/1.1 origin leg against an origin that answers byte for byte as the test says: interim
 * (1xx) responses before the final one, a body that arrives slowly in pieces, a Content-Length
 * the body does not reach, and the request framing the origin receives.
 */

interface RawOrigin {
  readonly port: number;
  /** Everything each connection received, in order of connection. */
  readonly received: string[];
  close(): Promise<void>;
}

type Script = (socket: net.Socket) => void;

/**
 * Answers the first request of each connection with the script for its path, once the request
 * (and the body it announced) has arrived whole.
 */
async function startRawOrigin(scripts: Readonly<Record<string, Script>>): Promise<RawOrigin> {
  const received: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const index = received.push('') - 1;
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      received[index] += chunk.toString('latin1');
      const text = received[index]!;
      const end = text.indexOf('\r\n\r\n');
      if (answered || end < 0) return;
      const head = text.slice(0, end);
      const body = text.slice(end + 4);
      const length = /\r\ncontent-length: *(\d+)/i.exec(head);
      if (/\r\ntransfer-encoding: *chunked/i.test(head) && !body.endsWith('0\r\n\r\n')) return;
      if (length && body.length < Number(length[1])) return;
      answered = true;
      const path = head.split(' ')[1] ?? '';
      (scripts[path] ?? ((s: net.Socket) => s.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')))(socket);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';

const SCRIPTS: Readonly<Record<string, Script>> = {
  '/hints': (socket) => {
    socket.write('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n');
    setTimeout(() => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfinal'), 20);
  },
  '/slow': (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 30\r\nConnection: close\r\n\r\n');
    let sent = 0;
    const timer = setInterval(() => {
      socket.write('0123456789');
      if (++sent === 3) {
        clearInterval(timer);
        socket.end();
      }
    }, 30);
  },
  '/short': (socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-this'),
  '/up-chunked': (socket) => socket.end('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n'),
  '/up-sized': (socket) => socket.end('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n'),
  '/continue': (socket) => {
    socket.write('HTTP/1.1 100 Continue\r\n\r\n');
    socket.end(OK);
  },
  '/after': (socket) => socket.end(OK),
};

describe('the HTTP/1.1 origin leg', () => {
  let gw: TestGateway;
  let o: RawOrigin;

  beforeAll(async () => {
    o = await startRawOrigin(SCRIPTS);
    gw = await startTestGateway({
      allowedPorts: { tunnel: [443], http: [o.port] },
      policies: { 'origin.yaml': 'rules:\n  - name: plain-origin\n    match: origin.test\n    action: inspect\n' },
    });
  });

  afterAll(async () => {
    await gw.stop();
    await o.close();
  });

  const url = (path: string) => `http://origin.test:${o.port}${path}`;
  const seen = (path: string) => o.received.find((r) => r.startsWith(`POST ${path} `)) ?? '';

  test('interim responses (103 Early Hints) are skipped; the final response reaches the client whole', async () => {
    const res = await curl(['-x', gw.proxy, url('/hints')]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('final');
  });

  test('a body that arrives in slow pieces is relayed as it comes, then recorded complete', async () => {
    const res = await curl(['-x', gw.proxy, url('/slow')]);
    expect(res.status).toBe(200);
    expect(res.body).toBe('012345678901234567890123456789');
    const [record] = await eventually(
      () => gw.requestRecords('/slow'),
      (r) => r.length === 1,
    );
    expect(record).toMatchObject({ status: 200, bytes_to_client: 30, error: null });
  });

  test('a body shorter than its Content-Length is cut for the client and recorded as the origin failing', async () => {
    const res = await curl(['-x', gw.proxy, url('/short')]);
    // curl reports a transfer closed with bytes outstanding, never a complete response.
    expect(res.exitCode).not.toBe(0);
    const [record] = await eventually(
      () => gw.requestRecords('/short'),
      (r) => r.length === 1,
    );
    expect(record!.error).toMatch(/^TG_ERR_UPSTREAM_PROTOCOL: .*closed the connection/);
  });

  test('a chunked upload reaches the origin chunked, a sized one with its Content-Length', async () => {
    const chunked = await curl(['-x', gw.proxy, '-H', 'Transfer-Encoding: chunked', '--data-binary', 'abc', url('/up-chunked')]);
    expect(chunked.status).toBe(204);
    const sized = await curl(['-x', gw.proxy, '--data-binary', 'abcdef', url('/up-sized')]);
    expect(sized.status).toBe(204);
    expect(seen('/up-chunked')).toMatch(/\r\ntransfer-encoding: chunked\r\n/i);
    expect(seen('/up-chunked')).not.toMatch(/content-length/i);
    expect(seen('/up-chunked')).toMatch(/\r\n\r\n3\r\nabc\r\n0\r\n\r\n$/);
    expect(seen('/up-sized')).toMatch(/\r\ncontent-length: 6\r\n/i);
    expect(seen('/up-sized')).not.toMatch(/transfer-encoding/i);
    expect(seen('/up-sized')).toMatch(/\r\n\r\nabcdef$/);
  });

  test('an unsolicited 100 Continue is a known limit of the HTTP/1.1 client: 502 naming it, and the gateway carries on', async () => {
    const res = await curl(['-x', gw.proxy, '--data-binary', 'x', url('/continue')]);
    expect(res.status).toBe(502);
    expect(res.headers['x-tollgate-reason']).toBe('TG_ERR_UPSTREAM_PROTOCOL');
    const [record] = await eventually(
      () => gw.requestRecords('/continue'),
      (r) => r.length === 1,
    );
    expect(record!.error).toMatch(/100 \(Continue\)/);
    expect((await curl(['-x', gw.proxy, url('/after')])).body).toBe('ok');
  });
});
