import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logging/logger';
import type { CertificateAuthority } from '../tls/ca';
import { caInstallPage } from './ca-install-page';
import type { FlowView } from './flow-view/flow-routes';
import type { GatewayMetrics } from './metrics';
import { buildPac } from './pac';
import type { Readiness } from './readiness';
import { statusDocument } from './status-json';
import { type StatusFacts, statusPage } from './status-page';
import { bracketedAddress } from '../protocol/address-text';

export interface AdminContext {
  readonly logger: Logger;
  readonly authority: CertificateAuthority;
  readonly metrics: GatewayMetrics;
  readonly pac: { readonly direct: readonly string[]; readonly proxyAddress: string | null };
  readiness(): Readiness;
  status(): StatusFacts;
  /** Where the explicit listener is bound, if enabled. */
  explicitAddress(): AddressInfo | null;
  /** The flow view (/flows), or null when flow_view.enabled is false. */
  readonly flows: FlowView | null;
}

const HTML_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  // The pages are static text: no scripts, no external anything.
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
  'x-content-type-options': 'nosniff',
} as const;

/** A Host header we are willing to reflect into links: a name or address with an optional port. */
const HOST_HEADER = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

function requestHost(req: IncomingMessage): string | null {
  const host = req.headers.host;
  return host !== undefined && HOST_HEADER.test(host) ? host : null;
}

function send(res: ServerResponse, status: number, headers: Record<string, string | number>, body: string | Buffer, head: boolean): void {
  const payload = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { ...headers, 'content-length': payload.length });
  res.end(head ? undefined : payload);
}

/** Where PAC clients should send traffic: pac.proxy_address, the bound address, or the host they asked us by. */
function pacProxyAddress(ctx: AdminContext, req: IncomingMessage): string | null {
  if (ctx.pac.proxyAddress) return ctx.pac.proxyAddress;
  const explicit = ctx.explicitAddress();
  if (!explicit) return null;
  if (explicit.address !== '0.0.0.0' && explicit.address !== '::') return `${bracketedAddress(explicit.address)}:${explicit.port}`;
  // A wildcard bind names no address clients can use; the name they reached the admin listener
  // by is the best guess. Deployments should set pac.proxy_address.
  const host = requestHost(req);
  if (!host) return null;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!;
  return `${name}:${explicit.port}`;
}

/**
 * The admin listener: health and readiness for orchestrators and balancers, Prometheus metrics,
 * a status page, and client onboarding (CA download and install page, PAC file). Plain HTTP and
 * unauthenticated, which is why the shipped configuration binds it to loopback.
 */
export function createAdminServer(ctx: AdminContext): http.Server {
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000, maxHeaderSize: 16 * 1024 });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    void route(ctx, req, res).catch((err: unknown) => {
      ctx.logger.error({ err, path: req.url }, 'admin request failed');
      if (!res.headersSent) send(res, 500, { 'content-type': 'text/plain' }, 'internal error\n', false);
      else res.destroy();
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    ctx.logger.debug({ code: err.code }, 'admin: malformed request');
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    socket.destroy();
  });
  return server;
}

async function route(ctx: AdminContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const head = req.method === 'HEAD';
  if (req.method !== 'GET' && !head) {
    send(res, 405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }, 'only GET and HEAD\n', false);
    return;
  }
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (ctx.flows?.handles(path)) {
    ctx.flows.route(req, res, path, new URLSearchParams(q < 0 ? '' : url.slice(q + 1)));
    return;
  }
  switch (path) {
    case '/healthz':
      send(res, 200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }, 'ok\n', head);
      return;
    case '/readyz': {
      const readiness = ctx.readiness();
      const reload = ctx.status().lastReload;
      // Still ready (see readiness.ts), but a person reading this should know.
      const warning = [...(reload.ok ? [] : [`the last policy reload (${reload.trigger}) failed; the previous policy stays in force`]), ...readiness.warnings].map((w) => `warning: ${w}\n`).join('');
      const body = readiness.ready ? `ready\n${warning}` : `not ready:\n${readiness.reasons.map((r) => `- ${r}\n`).join('')}${warning}`;
      send(res, readiness.ready ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, body, head);
      return;
    }
    case '/metrics': {
      const text = await ctx.metrics.registry.metrics();
      send(res, 200, { 'content-type': ctx.metrics.registry.contentType, 'cache-control': 'no-store' }, text, head);
      return;
    }
    case '/':
      send(res, 200, HTML_HEADERS, statusPage(ctx.status()), head);
      return;
    case '/status.json':
      send(res, 200, { 'content-type': 'application/json', 'cache-control': 'no-store' }, `${JSON.stringify(statusDocument(ctx.status()))}\n`, head);
      return;
    case '/ca.pem':
      send(res, 200, { 'content-type': 'application/x-pem-file', 'content-disposition': 'attachment; filename="tollgate-ca.pem"' }, ctx.authority.certPem, head);
      return;
    case '/ca.der':
    case '/ca.crt':
      // application/x-x509-ca-cert makes browsers and mobile OSes offer to install the CA;
      // Android's installer lists .crt and .cer files, not .der.
      send(res, 200, { 'content-type': 'application/x-x509-ca-cert', 'content-disposition': `attachment; filename="tollgate-ca.${path === '/ca.crt' ? 'crt' : 'der'}"` }, ctx.authority.certDer, head);
      return;
    case '/install': {
      const address = adminAuthority(req);
      const page = caInstallPage({ commonName: ctx.authority.commonName, fingerprint256: ctx.authority.fingerprint256, notAfter: ctx.authority.notAfter, baseUrl: `http://${address}` });
      send(res, 200, HTML_HEADERS, page, head);
      return;
    }
    case '/proxy.pac': {
      const proxy = pacProxyAddress(ctx, req);
      if (!proxy) {
        ctx.logger.warn('proxy.pac requested but no proxy address is known: enable listen.explicit or set pac.proxy_address');
        send(res, 404, { 'content-type': 'text/plain' }, 'no explicit proxy listener: enable listen.explicit or set pac.proxy_address\n', head);
        return;
      }
      send(res, 200, { 'content-type': 'application/x-ns-proxy-autoconfig', 'cache-control': 'max-age=300' }, buildPac({ direct: ctx.pac.direct, proxyAddress: proxy }), head);
      return;
    }
    default:
      send(res, 404, { 'content-type': 'text/plain' }, 'not found; see /\n', head);
  }
}

/** host[:port] the reader used to reach this listener, for copy-paste commands on the install page. */
function adminAuthority(req: IncomingMessage): string {
  const host = requestHost(req);
  if (host) return host;
  const local = req.socket.localAddress ?? '127.0.0.1';
  return `${bracketedAddress(local)}:${req.socket.localPort ?? 0}`;
}
