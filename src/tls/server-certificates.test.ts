import tls from 'node:tls';
import { ServerCertificateSet, certificateNameMatches } from './server-certificates';

describe('certificateNameMatches (RFC 6125: a wildcard is the whole left-most label)', () => {
  test.each([
    ['app.example', 'app.example', true],
    ['app.example', 'www.app.example', false],
    ['*.apps.example', 'one.apps.example', true],
    ['*.apps.example', 'apps.example', false],
    ['*.apps.example', 'a.b.apps.example', false],
    ['*.apps.example', '.apps.example', false],
  ])('%s covers %s: %s', (pattern, name, expected) => {
    expect(certificateNameMatches(pattern, name)).toBe(expected);
  });
});

describe('ServerCertificateSet', () => {
  const cert = (certFile: string, names: string[], addresses: string[] = []) => ({ certFile, names, addresses, notAfter: new Date(0), secureContext: tls.createSecureContext() });
  const set = new ServerCertificateSet([cert('default.pem', ['app.example']), cert('wild.pem', ['*.apps.example', 'apps.example']), cert('ip.pem', ['ip.example'], ['10.0.0.1'])]);

  test.each([
    ['app.example', 'default.pem'],
    ['one.apps.example', 'wild.pem'],
    ['apps.example', 'wild.pem'],
    ['10.0.0.1', 'ip.pem'],
    ['unknown.example', 'default.pem'],
    [null, 'default.pem'],
  ])('SNI %s gets %s', (sni, file) => {
    expect(set.select(sni)?.certFile).toBe(file);
  });

  test('a connection carries only hosts its certificate names', () => {
    expect(set.coversOnConnection('one.apps.example', 'two.apps.example')).toBe(true);
    expect(set.coversOnConnection('one.apps.example', 'app.example')).toBe(false);
    expect(set.coversOnConnection(null, 'anything.example')).toBe(true);
  });
});
