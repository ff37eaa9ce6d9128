import type { ReverseBackend } from '../http/reverse-source';
import { type Host, hostAuthorityText, normaliseHost } from '../protocol/host';
import type { Target } from '../protocol/target';
import { ConfigError } from '../sources/config-error';

/** One configured route as the router holds it. */
export interface ReverseRoute extends ReverseBackend {
  /** `reverse.routes[i]` or `reverse.default_route`, for messages. */
  readonly key: string;
  /** The host pattern as written (lower case): `app.example` or `*.apps.example`; null for the default route. */
  readonly hostPattern: string | null;
  readonly pathPrefix: string;
  /** `ca_file` of the route, else null (= upstream.ca_file). */
  readonly caFile: string | null;
}

/** The `reverse` block of the configuration, as the schema types it (config/ sits above front-ends). */
export interface ReverseConfig {
  readonly certificates: readonly { readonly cert: string; readonly key: string }[];
  readonly routes: readonly { readonly host: string; readonly pathPrefix: string; readonly backend: string; readonly caFile: string | null }[];
  readonly defaultRoute: { readonly backend: string; readonly caFile: string | null } | null;
}

/** A backend URL's scheme and authority as a dialable target. */
function backendTarget(url: string, key: string, sourcePath: string): { scheme: 'http' | 'https'; target: Target; servername: string | null } {
  const parsed = new URL(url);
  const scheme = parsed.protocol === 'https:' ? 'https' : 'http';
  const name = normaliseHost(parsed.hostname.replace(/^\[|\]$/g, ''));
  if (!name.ok) throw new ConfigError([{ file: sourcePath, line: null, path: `${key}.backend`, message: `"${url}": ${name.reason}` }]);
  const port = parsed.port === '' ? (scheme === 'https' ? 443 : 80) : Number(parsed.port);
  return { scheme, target: { host: name.host, port }, servername: name.host.kind === 'name' ? name.host.name : null };
}

function routeLabel(hostPattern: string | null, pathPrefix: string): string {
  return hostPattern === null ? 'default_route' : `${hostPattern}${pathPrefix}`;
}

/**
 * The routes of the reverse-proxy listener, compiled from `reverse.routes` and
 * `reverse.default_route`. Matching, documented in the README: an exact host beats a wildcard
 * (`*.apps.example`: exactly one more label, as in certificates); among routes of that host the
 * longest `path_prefix` that the path starts with wins; then `default_route`; else none (421).
 */
export class ReverseRouter {
  private readonly exact = new Map<string, ReverseRoute[]>();
  private readonly wildcard = new Map<string, ReverseRoute[]>();

  private constructor(
    readonly routes: readonly ReverseRoute[],
    readonly defaultRoute: ReverseRoute | null,
  ) {
    for (const route of routes) {
      const pattern = route.hostPattern!;
      const [map, key] = pattern.startsWith('*.') ? [this.wildcard, pattern.slice(2)] : [this.exact, pattern];
      const list = map.get(key) ?? [];
      list.push(route);
      // Longest prefix first, so the first match is the most specific.
      list.sort((a, b) => b.pathPrefix.length - a.pathPrefix.length);
      map.set(key, list);
    }
  }

  /** Compiles the configuration's reverse block; throws ConfigError (file, key, fix) on a conflict. */
  static compile(config: ReverseConfig, sourcePath: string): ReverseRouter {
    const seen = new Map<string, string>();
    const caOf = new Map<string, { key: string; caFile: string | null }>();
    const build = (key: string, hostPattern: string | null, pathPrefix: string, backend: string, caFile: string | null): ReverseRoute => {
      const label = routeLabel(hostPattern, pathPrefix);
      const earlier = seen.get(label);
      if (earlier) throw new ConfigError([{ file: sourcePath, line: null, path: key, message: `the same host and path_prefix as ${earlier}; remove one of them` }]);
      seen.set(label, key);
      const { scheme, target, servername } = backendTarget(backend, key, sourcePath);
      // One backend is dialled with one trust store: two routes may not disagree about it.
      const endpoint = `${scheme}://${hostAuthorityText(target.host)}:${target.port}`;
      const other = caOf.get(endpoint);
      if (other && other.caFile !== caFile) {
        throw new ConfigError([
          { file: sourcePath, line: null, path: `${key}.ca_file`, message: `backend ${endpoint} is also used by ${other.key} with a different ca_file; give both the same ca_file` },
        ]);
      }
      caOf.set(endpoint, { key, caFile });
      if (scheme === 'http' && caFile !== null)
        throw new ConfigError([{ file: sourcePath, line: null, path: `${key}.ca_file`, message: 'ca_file is for https:// backends; remove it or use https://' }]);
      return { key, hostPattern, pathPrefix, caFile, route: label, backend: endpoint, scheme, target, servername };
    };
    const routes = config.routes.map((r, i) => build(`reverse.routes[${i}]`, r.host, r.pathPrefix, r.backend, r.caFile));
    const fallback = config.defaultRoute ? build('reverse.default_route', null, '/', config.defaultRoute.backend, config.defaultRoute.caFile) : null;
    return new ReverseRouter(routes, fallback);
  }

  /** Every route with the default route last: the backends that may be dialled. */
  get all(): readonly ReverseRoute[] {
    return this.defaultRoute ? [...this.routes, this.defaultRoute] : this.routes;
  }

  /** The route serving `host` and `path`, or null (421). Address hosts match only the default route. */
  route(host: Host, path: string): ReverseRoute | null {
    if (host.kind === 'name') {
      const name = host.name;
      const exact = this.pick(this.exact.get(name), path);
      if (exact) return exact;
      const dot = name.indexOf('.');
      if (dot > 0) {
        const wild = this.pick(this.wildcard.get(name.slice(dot + 1)), path);
        if (wild) return wild;
      }
    }
    return this.defaultRoute;
  }

  private pick(candidates: readonly ReverseRoute[] | undefined, path: string): ReverseRoute | null {
    if (!candidates) return null;
    return candidates.find((route) => path.startsWith(route.pathPrefix)) ?? null;
  }
}
