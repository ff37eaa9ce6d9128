import { domainToUnicode } from 'node:url';
import fc from 'fast-check';
import { decide } from '../../src/policy/decide';
import { compilePolicy } from '../../src/policy/load-policy';
import type { Decision } from '../../src/policy/types';
import { parseConnectAuthority, parseHostAndOptionalPort, targetText } from '../../src/protocol/target';
import { type Host, hostAuthorityText, normaliseHost } from '../../src/protocol/host';

const RUNS = 500;

/** Upper-cases ASCII letters only: 'ß'.toUpperCase() is 'SS', a different name, not a case variant. */
function asciiUpper(text: string, which: (i: number) => boolean = () => true): string {
  return [...text].map((c, i) => (/[a-z]/.test(c) && which(i) ? c.toUpperCase() : c)).join('');
}

/** Characters that matter to host parsing, so random strings hit the interesting paths. */
const hostChar = fc.constantFrom(...'abcxyzABCXYZ0123456789.-_:[]%@/\\ \t\u0000x0Xç界ß\u200b\uff0e。'.split(''));
const hostish = fc.oneof(fc.string({ unit: hostChar, maxLength: 40 }), fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }));

const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/);
const unicodeLabel = fc.constantFrom('bücher', 'münchen', 'straße', '例え', 'пример', 'café', 'ελληνικά');
const name = fc.array(fc.oneof(label, label, unicodeLabel), { minLength: 1, maxLength: 4 }).map((labels) => `${labels.join('.')}.example`);
const octet = fc.nat(255);
const ipv4Spelling = fc.tuple(octet, octet, octet, octet, fc.nat(4)).map(([a, b, c, d, form]) => {
  const n = ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
  switch (form) {
    case 0:
      return { text: `${a}.${b}.${c}.${d}`, address: `${a}.${b}.${c}.${d}` };
    case 1:
      return { text: String(n), address: `${a}.${b}.${c}.${d}` };
    case 2:
      return { text: `0x${n.toString(16)}`, address: `${a}.${b}.${c}.${d}` };
    case 3:
      return { text: `0${a.toString(8)}.${b}.${c}.0x${d.toString(16)}`, address: `${a}.${b}.${c}.${d}` };
    default:
      return { text: `[::ffff:${a}.${b}.${c}.${d}]`, address: `${a}.${b}.${c}.${d}` };
  }
});

describe('host and authority parsing (property)', () => {
  test('never throws on any input; failures carry a reason', () => {
    fc.assert(
      fc.property(hostish, fc.nat(70000), (text, port) => {
        for (const result of [normaliseHost(text), parseConnectAuthority(text), parseConnectAuthority(`${text}:${port}`), parseHostAndOptionalPort(text, 80)]) {
          if (!result.ok) expect(result.reason.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('the normal form is a fixed point: normalising it again changes nothing', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          hostish,
          name,
          ipv4Spelling.map((s) => s.text),
        ),
        (text) => {
          const first = normaliseHost(text);
          if (!first.ok) return;
          expect(normaliseHost(hostAuthorityText(first.host))).toEqual(first);
          const target = parseConnectAuthority(`${hostAuthorityText(first.host)}:443`);
          expect(target.ok && targetText(target.target)).toBe(`${hostAuthorityText(first.host)}:443`);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('every IPv4 spelling (decimal, hex, octal, mapped) is an address, never a name', () => {
    fc.assert(
      fc.property(ipv4Spelling, fc.boolean(), ({ text, address }, trailingDot) => {
        const spelled = trailingDot && !text.startsWith('[') ? `${text}.` : text;
        const result = normaliseHost(spelled);
        expect(result).toEqual({ ok: true, host: { kind: 'ipv4', address } });
      }),
      { numRuns: RUNS },
    );
  });

  test('names are stable under case, a trailing dot and IDN spelling', () => {
    fc.assert(
      fc.property(name, fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }), fc.boolean(), (text, upper, dot) => {
        const base = normaliseHost(text);
        if (!base.ok) return;
        const mixed = asciiUpper(text, (i) => upper[i % 64]!);
        const variants = [mixed, `${text}.`, dot ? `${mixed}.` : mixed];
        if (base.host.kind === 'name') variants.push(base.host.name, domainToUnicode(base.host.name));
        for (const variant of variants) expect(normaliseHost(variant)).toEqual(base);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('decisions are stable under name normalisation (property)', () => {
  const policy = compilePolicy(
    [
      {
        name: 'a.yaml',
        displayPath: 'policies/a.yaml',
        text: [
          'rules:',
          '  - match: .bücher.example',
          '    action: inspect',
          '  - match: "*.corp.example"',
          '    action: splice',
          '  - match: secret.corp.example',
          '    action: deny',
          '  - match: 10.0.0.0/8',
          '    action: splice',
          '  - match: 127.0.0.1',
          '    action: inspect',
          '',
        ].join('\n'),
      },
    ],
    { defaultAction: 'deny', allowedPorts: { tunnel: [443], http: [80] } },
  );

  function decideText(text: string): Decision | null {
    const host = normaliseHost(text);
    if (!host.ok) return null;
    return decide({ target: host.host as Host, port: 443, sni: null, frontend: 'explicit-connect', principal: null }, policy);
  }

  const interesting = fc.oneof(
    fc.constantFrom('bücher.example', 'xn--bcher-kva.example', 'a.bücher.example', 'x.corp.example', 'secret.corp.example', 'corp.example', 'other.example'),
    name,
    ipv4Spelling.map((s) => s.text),
    fc.tuple(octet, octet, octet).map(([b, c, d]) => `10.${b}.${c}.${d}`),
  );

  test('case, trailing dot, punycode and address spelling never change the decision', () => {
    fc.assert(
      fc.property(interesting, (text) => {
        const base = decideText(text);
        if (base === null) return;
        const host = normaliseHost(text);
        const variants = [asciiUpper(text), text.startsWith('[') ? text : `${text}.`];
        if (host.ok) variants.push(hostAuthorityText(host.host));
        if (host.ok && host.host.kind === 'name') variants.push(domainToUnicode(host.host.name));
        for (const variant of variants) {
          const other = decideText(variant);
          expect(other === null ? null : { action: other.action, rule: other.rule?.id ?? null }).toEqual({ action: base.action, rule: base.rule?.id ?? null });
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('addresses spelled as names are decided as the address (decimal 127.0.0.1 is the 127.0.0.1 rule)', () => {
    for (const spelling of ['2130706433', '0x7f000001', '0177.0.0.1', '127.1', '127.0.0.1.', '[::ffff:127.0.0.1]']) {
      expect(decideText(spelling)?.action).toBe('inspect');
    }
  });
});
