// A tiny origin for the compose demo: answers every request with a short text body.
const http = require('node:http');
http
  .createServer((req, res) => {
    const body = `hello from the demo origin: ${req.method} ${req.url}\n`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  })
  .listen(80, '0.0.0.0');
