import vm from 'node:vm';

/**
 * Evaluates a PAC file the way browsers do: a fresh global with the standard helper functions
 * (Netscape's original set, as implemented by browsers and pacparser), then FindProxyForURL.
 * dnsResolve/isResolvable answer from `hosts` only: a test never touches real DNS.
 */
export function loadPac(source: string, hosts: Readonly<Record<string, string>> = {}): (url: string, host: string) => string {
  const toNumber = (ip: string): number => ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
  const resolve = (host: string): string | null => (/^[0-9]+(\.[0-9]+){3}$/.test(host) ? host : (hosts[host] ?? null));
  const helpers = {
    isPlainHostName: (host: string) => !host.includes('.'),
    dnsDomainIs: (host: string, domain: string) => host.length >= domain.length && host.endsWith(domain),
    localHostOrDomainIs: (host: string, hostdom: string) => host === hostdom || (!host.includes('.') && hostdom.startsWith(`${host}.`)),
    isResolvable: (host: string) => resolve(host) !== null,
    dnsResolve: (host: string) => resolve(host),
    isInNet: (host: string, pattern: string, mask: string) => {
      const ip = resolve(host);
      if (ip === null) return false;
      const m = toNumber(mask);
      return (toNumber(ip) & m) >>> 0 === (toNumber(pattern) & m) >>> 0;
    },
    myIpAddress: () => '127.0.0.1',
    dnsDomainLevels: (host: string) => host.split('.').length - 1,
    shExpMatch: (text: string, pattern: string) => {
      const regex = new RegExp(
        `^${pattern
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.')}$`,
      );
      return regex.test(text);
    },
    weekdayRange: () => true,
    dateRange: () => true,
    timeRange: () => true,
  };
  const context = vm.createContext({ ...helpers });
  // Throws on a syntax error, which is what the test is for.
  new vm.Script(source, { filename: 'proxy.pac' }).runInContext(context, { timeout: 1000 });
  const find = (context as { FindProxyForURL?: unknown }).FindProxyForURL;
  if (typeof find !== 'function') throw new Error('the PAC file defines no FindProxyForURL function');
  return (url, host) => {
    const result: unknown = vm.runInContext(`FindProxyForURL(${JSON.stringify(url)}, ${JSON.stringify(host)})`, context, { timeout: 1000 });
    if (typeof result !== 'string') throw new Error(`FindProxyForURL returned ${typeof result}`);
    return result;
  };
}
