import path from 'node:path';
import { ConfigError } from '../sources/config-error';
import { parseConfig } from './load-config';
import { parseDuration, parseSize } from '../sources/units';

function problemsOf(text: string): string[] {
  try {
    parseConfig(text, '/etc/tollgate/tollgate.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  test('an empty file gives the documented defaults, frozen, paths resolved against the file', () => {
    const config = parseConfig('', '/etc/tollgate/tollgate.yaml');
    expect(config.defaultAction).toBe('deny');
    expect(config.listen.explicit).toBeNull();
    expect(config.policiesDir).toBe(path.resolve('/etc/tollgate/policies'));
    expect(config.ca.cert).toBe(path.resolve('/etc/tollgate/certs/ca.pem'));
    expect(config.http.maxHeaderBytes).toBe(65536);
    expect(config.allowedPorts.tunnel).toEqual([443]);
    expect(config.upstream.allowAddresses).toEqual([]);
    expect(Object.isFrozen(config.upstream)).toBe(true);
  });

  test('human units', () => {
    const config = parseConfig('http:\n  max_header_size: 32KiB\nupstream:\n  connect_timeout: 2.5s\n', '/x/t.yaml');
    expect(config.http.maxHeaderBytes).toBe(32768);
    expect(config.upstream.connectTimeoutMs).toBe(2500);
    expect(parseSize('1.5MB')).toBe(1_500_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseSize('12 parsecs')).toBeNull();
  });

  test('cache and resolver keys: defaults and human units', () => {
    const defaults = parseConfig('', '/x/t.yaml');
    expect(defaults.cache).toEqual({ enabled: true, maxSizeBytes: 256 * 1024 * 1024, maxObjectBytes: 8 * 1024 * 1024, collapseMaxWaiters: 100, collapseMaxWaitMs: 5_000 });
    expect(defaults.upstream.dnsServers).toEqual([]);
    const config = parseConfig(
      'cache:\n  max_size: 1GiB\n  max_object_size: 32MiB\nupstream:\n  dns_servers: [10.0.0.53, "10.0.0.54:5353", "[2001:db8::53]:53"]\n  dns_negative_ttl: 2s\n',
      '/x/t.yaml',
    );
    expect(config.cache.maxSizeBytes).toBe(1024 ** 3);
    expect(config.cache.maxObjectBytes).toBe(32 * 1024 ** 2);
    expect(config.upstream.dnsServers).toEqual(['10.0.0.53', '10.0.0.54:5353', '[2001:db8::53]:53']);
    expect(config.upstream.dnsNegativeTtlMs).toBe(2000);
  });

  test('listeners: host:port, IPv6 in brackets, port 0, null', () => {
    const config = parseConfig('listen:\n  explicit: 127.0.0.1:0\n  socks: "[::1]:1080"\n  admin: null\n', '/x/t.yaml');
    expect(config.listen.explicit).toEqual({ host: '127.0.0.1', port: 0 });
    expect(config.listen.socks).toEqual({ host: '::1', port: 1080 });
    expect(config.listen.admin).toBeNull();
  });

  test('PROXY protocol listeners and the PAC section', () => {
    const config = parseConfig(
      'listen:\n  proxy_protocol: [explicit, transparent_tls]\npac:\n  direct: [Intranet.Example, .corp.example, "*.lab.example", 10.0.0.0/8]\n  proxy_address: gw.corp.example:3128\n',
      '/x/t.yaml',
    );
    expect(config.listen.proxyProtocol).toEqual(['explicit', 'transparentTls']);
    expect(config.pac).toEqual({ direct: ['intranet.example', '.corp.example', '*.lab.example', '10.0.0.0/8'], proxyAddress: 'gw.corp.example:3128' });
    expect(parseConfig('', '/x/t.yaml').listen.proxyProtocol).toEqual([]);
    // The PROXY header has its own deadline, short by default, apart from the request headers'.
    expect(parseConfig('', '/x/t.yaml').limits).toMatchObject({ headerTimeoutMs: 30_000, proxyHeaderTimeoutMs: 5_000 });
    expect(parseConfig('limits:\n  proxy_header_timeout: 750ms\n', '/x/t.yaml').limits.proxyHeaderTimeoutMs).toBe(750);
  });

  test.each([
    ['listen:\n  explicit: localhost:3128\n', /tollgate\.yaml:2: listen\.explicit: .*expected host:port/],
    ['listen:\n  explicit: 127.0.0.1:99999\n', /:2: listen\.explicit/],
    ['listen:\n  explicitt: 127.0.0.1:3128\n', /:2: listen\.explicitt: unknown key; known keys here: explicit, socks/],
    ['default_action: allow\n', /:1: default_action: expected one of: deny, splice, inspect/],
    ['http:\n  max_header_size: lots\n', /:2: http\.max_header_size: "lots" is not a size such as 64KiB/],
    ['upstream:\n  allow_addresses: [10.0.0.0/33]\n', /:2: upstream\.allow_addresses\[0\]: "10\.0\.0\.0\/33" is not an address or CIDR/],
    ['ca:\n  leaf_validity: 90d\n', /ca\.leaf_validity: must be at most 47d/],
    ['listen: [1, 2\n', /invalid YAML/],
    ['cache:\n  max_size: 1MiB\n  max_object_size: 2MiB\n', /cache\.max_object_size: max_object_size must not exceed max_size/],
    ['upstream:\n  dns_servers: [dns.example.com]\n', /:2: upstream\.dns_servers\[0\]: "dns\.example\.com": expected a nameserver address/],
    ['a: 1\na: 2\n', /invalid YAML/],
    ['listen:\n  proxy_protocol: [admin]\n', /listen\.proxy_protocol\[0\]: expected a list of: explicit, socks, transparent_tls, transparent_http/],
    ['pac:\n  direct: ["bad name!"]\n', /pac\.direct\[0\]: expected a name/],
    ['pac:\n  proxy_address: "proxy.example"\n', /pac\.proxy_address: expected host:port/],
    ['limits:\n  proxy_header_timeout: 50ms\n', /:2: limits\.proxy_header_timeout: must be at least 100ms/],
    // A bare number for a duration: seconds to a person, milliseconds to a parser. Refused.
    ['limits:\n  peek_timeout: 10\n', /:2: limits\.peek_timeout: 10 has no unit: write 10s for seconds or 10ms for milliseconds/],
    ['upstream:\n  connect_timeout: "5"\n', /:2: upstream\.connect_timeout: 5 has no unit: write 5s for seconds or 5ms/],
    ['allowed_ports:\n  tunnel: 443\n', /:2: allowed_ports\.tunnel: expected a list: write \[443\] for one item/],
    ['http:\n  x_forwarded_for: "yes"\n', /:2: http\.x_forwarded_for: expected true or false, not "yes"/],
    ['limits:\n  proxy_header_timeout: 5m\n', /:2: limits\.proxy_header_timeout: must be at most 1m/],
  ])('%j is refused with file, line, key and the fix', (text, message) => {
    const problems = problemsOf(text);
    expect(problems.some((p) => message.test(p))).toBe(true);
    for (const p of problems) expect(p).toMatch(/tollgate\.yaml/);
  });
});

describe('fleet keys: state and audit.syslog', () => {
  test('defaults: state in this process, no syslog', () => {
    const config = parseConfig('', '/etc/tollgate/tollgate.yaml');
    expect(config.state).toEqual({ redis: null, passwordFile: null, caFile: null, keyPrefix: 'tollgate:', timeoutMs: 500 });
    expect(config.audit.syslog).toBeNull();
  });

  test('state.redis with a password file; the password never in the URL', () => {
    const config = parseConfig('state:\n  redis: rediss://tollgate@redis.internal:6380/2\n  password_file: secrets/redis\n  timeout: 250ms\n', '/etc/tollgate/tollgate.yaml');
    expect(config.state).toMatchObject({ redis: 'rediss://tollgate@redis.internal:6380/2', passwordFile: path.resolve('/etc/tollgate/secrets/redis'), timeoutMs: 250 });
    expect(problemsOf('state:\n  redis: redis://:hunter2@redis:6379/0\n')).toEqual([expect.stringMatching(/state\.redis: no password in the URL .* state\.password_file/)]);
    expect(problemsOf('state:\n  redis: http://redis:6379\n')).toEqual([expect.stringMatching(/state\.redis: expected a redis:\/\/ or rediss:\/\/ URL/)]);
    expect(problemsOf('state:\n  password_file: x\n')).toEqual([expect.stringMatching(/state\.redis: password_file and ca_file need state\.redis/)]);
  });

  test('audit.syslog: address, protocol, facility by name or number, limits', () => {
    const config = parseConfig('audit:\n  syslog:\n    address: "[2001:db8::5]:6514"\n    protocol: tls\n    facility: local4\n    buffer_size: 1MiB\n', '/x/t.yaml');
    expect(config.audit.syslog).toEqual({
      host: '2001:db8::5',
      port: 6514,
      protocol: 'tls',
      facility: 20,
      appName: 'tollgate',
      hostname: null,
      alsoFile: true,
      bufferBytes: 1024 * 1024,
      maxMessageBytes: 64 * 1024,
      caFile: null,
    });
    expect(parseConfig('audit:\n  syslog:\n    address: siem:514\n    facility: 13\n', '/x/t.yaml').audit.syslog).toMatchObject({ host: 'siem', port: 514, protocol: 'tcp', facility: 13 });
    expect(problemsOf('audit:\n  syslog:\n    address: siem\n')).toEqual([expect.stringMatching(/audit\.syslog\.address: "siem": expected host:port/)]);
    expect(problemsOf('audit:\n  syslog:\n    address: siem:514\n    facility: local9\n')).toEqual([expect.stringMatching(/audit\.syslog\.facility: expected a facility name/)]);
    expect(problemsOf('audit:\n  syslog:\n    address: siem:514\n    ca_file: ca.pem\n')).toEqual([expect.stringMatching(/audit\.syslog\.ca_file: ca_file is for protocol: tls/)]);
    expect(problemsOf('audit:\n  syslog:\n    address: siem:514\n    protocol: udp\n    max_message_size: 128KiB\n')).toEqual([
      expect.stringMatching(/audit\.syslog\.max_message_size: a UDP datagram/),
    ]);
  });
});
