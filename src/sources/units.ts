/**
 * Human units for sizes and durations in configuration files: `64KiB`, `1.5MB`, `30s`, `5m`.
 * A bare number is bytes or milliseconds here; the configuration schema (fields.ts) refuses a
 * bare number for a duration, where the unit is never obvious. Parsers return null on anything
 * they do not understand so the schema can say which key is wrong and what it expected.
 */

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const QUANTITY = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/;

function parseQuantity(input: string | number, units: Readonly<Record<string, number>>): number | null {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? Math.round(input) : null;
  const match = QUANTITY.exec(input);
  if (!match) return null;
  const [, amount, unit] = match;
  const factor = unit === '' ? 1 : units[unit!.toLowerCase()];
  if (factor === undefined) return null;
  const value = Number(amount) * factor;
  return Number.isSafeInteger(Math.round(value)) ? Math.round(value) : null;
}

/** `64KiB` -> 65536. Units: B, KB, MB, GB (powers of 1000), KiB, MiB, GiB (powers of 1024). */
export function parseSize(input: string | number): number | null {
  return parseQuantity(input, SIZE_UNITS);
}

/** `30s` -> 30000. Units: ms, s, m, h, d. */
export function parseDuration(input: string | number): number | null {
  return parseQuantity(input, DURATION_UNITS);
}

export const SIZE_HINT = 'a size such as 64KiB, 10MiB or 1GB';
export const DURATION_HINT = 'a duration such as 500ms, 30s, 5m or 1h';
