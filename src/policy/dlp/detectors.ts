import type { Detector } from './dlp-types';

/** The Luhn (mod 10) checksum of card numbers; separators are ignored. */
export function passesLuhn(text: string): boolean {
  const digits = text.replace(/[^0-9]/g, '');
  if (digits.length < 13 || digits.length > 19) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/**
 * Built-in detectors. Each regex is bounded (no unbounded repetition) so the scanner's overlap
 * tail can be sized from `maxLength`, and anchored against neighbouring characters of the same
 * kind so a longer token is not reported as a shorter one.
 */
export const BUILTIN_DETECTORS: readonly Detector[] = Object.freeze([
  {
    // 13-19 digits, optionally grouped by single spaces or dashes, starting with a major
    // network's first digit (2-6); then the Luhn check. 19 digits + 18 separators + 2 context.
    name: 'payment_card',
    regex: /(?<![0-9])[2-6](?:[ -]?[0-9]){12,18}(?![0-9])/g,
    maxLength: 40,
    validate: passesLuhn,
  },
  {
    // AWS access key ids: long-term (AKIA), temporary (ASIA) and the other documented prefixes.
    name: 'aws_access_key_id',
    regex: /(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}(?![A-Z0-9])/g,
    maxLength: 22,
  },
  {
    // Classic GitHub tokens (personal, OAuth, user-to-server, server-to-server, refresh) and
    // fine-grained personal access tokens.
    name: 'github_token',
    regex: /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})(?![A-Za-z0-9_])/g,
    maxLength: 95,
  },
  {
    name: 'google_api_key',
    regex: /(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])/g,
    maxLength: 41,
  },
  {
    // Bot, user, app-level and refresh tokens.
    name: 'slack_token',
    regex: /(?<![A-Za-z0-9-])xox[abposre]-[0-9A-Za-z-]{10,250}/g,
    maxLength: 256,
  },
  {
    name: 'private_key',
    regex: /-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----/g,
    maxLength: 48,
  },
]);

export const BUILTIN_DETECTOR_NAMES: readonly string[] = BUILTIN_DETECTORS.map((d) => d.name);
