import net from 'node:net';
import { classifyOriginError } from './errors';
import { H1Pools } from './h1-pools';
import type { Egress } from './egress';

/** An error as Node or undici raise it: a message, and the fields they set. */
function error(fields: { message: string; code?: string; name?: string }): NodeJS.ErrnoException {
  const err = new Error(fields.message) as NodeJS.ErrnoException;
  if (fields.code !== undefined) err.code = fields.code;
  if (fields.name !== undefined) err.name = fields.name;
  return err;
}

describe('classifyOriginError', () => {
  test.each([
    [{ message: 'connect ECONNREFUSED', code: 'ECONNREFUSED' }, 'TG_ERR_UPSTREAM_REFUSED'],
    [{ message: 'read ECONNRESET', code: 'ECONNRESET' }, 'TG_ERR_UPSTREAM_PROTOCOL'],
    [{ message: 'certificate has expired', code: 'CERT_HAS_EXPIRED' }, 'TG_ERR_UPSTREAM_CERT'],
    [{ message: 'Parse Error: Invalid header value char', code: 'HPE_INVALID_HEADER_TOKEN' }, 'TG_ERR_UPSTREAM_PROTOCOL'],
    [{ message: 'Response does not match the HTTP/1.1 protocol (Invalid character in chunk size)', name: 'HTTPParserError' }, 'TG_ERR_UPSTREAM_PROTOCOL'],
    [{ message: 'something nobody expected' }, 'TG_ERR_UPSTREAM_UNREACHABLE'],
  ])('%j is %s', (fields, code) => {
    expect(classifyOriginError(error(fields), 'http://origin.test').code).toBe(code);
  });

  test("a malformed chunk from a real origin, through the HTTP/1.1 pools, is the origin's protocol error", async () => {
    const origin = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\nbad\r\n'));
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const port = (origin.address() as net.AddressInfo).port;
    // The door out, reduced to what a plain connection needs: a socket to the origin.
    const egress = {
      routeOf: () => [],
      connect: async () => ({ socket: net.connect(port, '127.0.0.1'), remote: { address: '127.0.0.1', family: 4 } }),
    } as unknown as Egress;
    const pools = new H1Pools(egress, { maxSocketsPerHost: 1, idleTimeoutMs: 1000 });
    try {
      const failure = await new Promise<Error>((resolve) => {
        pools.dispatch(
          { target: { host: { kind: 'name', name: 'origin.test' }, port }, tls: null, method: 'GET', path: '/', headers: ['Host', 'origin.test'], body: null, bodyLengthStated: false, upgrade: null },
          {
            onRequestStart: () => undefined,
            onResponseStart: () => undefined,
            onResponseData: () => undefined,
            onResponseEnd: () => resolve(new Error('the malformed response ended well')),
            onResponseError: (_controller, err) => resolve(err),
          },
        );
      });
      expect(classifyOriginError(failure as NodeJS.ErrnoException, 'http://origin.test').code).toBe('TG_ERR_UPSTREAM_PROTOCOL');
    } finally {
      pools.destroy();
      await new Promise((resolve) => origin.close(resolve));
    }
  });
});
