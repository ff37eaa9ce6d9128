import type { Detector, DlpFinding } from './dlp-types';

/**
 * Scans one complete message held in memory (a reassembled WebSocket message) with the same
 * detectors, Latin-1 decoding and look-alike checks as the streaming body scanner
 * (scanner.ts), which needs no overlap bookkeeping here since the whole message is at hand.
 * Returns at most `limit` findings, in detector order; offsets are bytes into the message.
 */
export function scanMessage(detectors: readonly Detector[], payload: Buffer, limit: number): DlpFinding[] {
  const findings: DlpFinding[] = [];
  if (limit <= 0 || payload.length === 0) return findings;
  const text = payload.toString('latin1');
  for (const detector of detectors) {
    const regex = detector.regex;
    regex.lastIndex = 0;
    for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
      if (m[0].length === 0 || (detector.validate && !detector.validate(m[0]))) {
        // An empty match or a look-alike may hide a real match starting just after it.
        regex.lastIndex = m.index + 1;
        continue;
      }
      findings.push({ detector: detector.name, offset: m.index });
      if (findings.length >= limit) return findings;
    }
  }
  return findings;
}
