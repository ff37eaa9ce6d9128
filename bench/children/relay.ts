import net, { type Socket } from 'node:net';

/**
 * The `relay` baseline: a minimal Node byte relay that does no work of its own. CONNECT gets
 * `200` and a pipe to the target; any other request is piped, bytes untouched, to the origin its
 * Host header names (one origin in the bench, so keep-alive works). What it costs is what any
 * Node proxy pays for moving bytes through user space on this machine.
 * Prints one JSON line with the bound port.
 */
const ESTABLISHED = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n');

function relay(client: Socket): void {
  let head = Buffer.alloc(0);
  client.on('error', () => undefined);
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > 65536) client.destroy();
      return;
    }
    client.removeListener('data', onData);
    client.pause();
    const text = head.subarray(0, end).toString('latin1');
    const isConnect = text.startsWith('CONNECT ');
    const authority = isConnect ? text.slice(8, text.indexOf(' ', 8)) : (/\r\nhost:\s*([^\r\n]+)/i.exec(text)?.[1] ?? '');
    const colon = authority.lastIndexOf(':');
    const host = authority.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(authority.slice(colon + 1));
    const upstream = net.connect({ host: host === 'localhost' ? '127.0.0.1' : host, port });
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.once('connect', () => {
      if (isConnect) {
        client.write(ESTABLISHED);
        const rest = head.subarray(end + 4);
        if (rest.length > 0) upstream.write(rest);
      } else {
        upstream.write(head);
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  };
  client.on('data', onData);
}

const server = net.createServer(relay);
server.listen(0, '127.0.0.1', () => {
  const address = server.address() as net.AddressInfo;
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
});
