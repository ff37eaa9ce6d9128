/**
 * The value of one hexadecimal digit of a percent-encoding (RFC 3986 section 2.1) from its
 * character code, either case; -1 for anything else. Shared by the canonical path HTTP rules
 * match (policy/rules/path.ts) and the decoded view DLP scans (http/upload-views.ts).
 */
export function hexDigitValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  return -1;
}
