import { Transform, type TransformCallback } from 'node:stream';
import type { Detector, DlpFinding } from './dlp-types';

/** Findings kept per body in report-only mode; enough to audit without growing with the body. */
const MAX_FINDINGS = 16;

/** Raised by a scanner in `deny` mode on its first finding; the body stops there. */
export class DlpMatch extends Error {
  override readonly name = 'DlpMatch';
  constructor(readonly finding: DlpFinding) {
    super(`upload blocked: ${finding.detector} detected at byte ${finding.offset}`);
  }
}

export interface ScannerOptions {
  readonly detectors: readonly Detector[];
  /** deny: fail the stream with DlpMatch on the first finding; log: record and pass on. */
  readonly stopOnFirst: boolean;
  readonly onFinding: (finding: DlpFinding) => void;
}

/**
 * Scans a byte stream for detector matches with bounded memory. The last `holdBack` bytes (the
 * longest text any detector can need) are held until the next chunk arrives, so that
 *   - a match split across chunk boundaries is still seen whole, and
 *   - in deny mode the bytes of a match are never passed on before it is recognised.
 * A match that ends exactly at the end of the data seen so far could still grow, so it is
 * decided only once more data (or the end) arrives. Memory: one chunk plus `holdBack` bytes.
 */
export function createDlpScanner(options: ScannerOptions): Transform {
  const { detectors, stopOnFirst, onFinding } = options;
  // One byte more than the longest match: the first held byte is context only (see scan).
  const holdBack = Math.max(1, ...detectors.map((d) => d.maxLength)) + 1;
  // Offsets are of whole bytes: Latin-1 maps each byte to one UTF-16 unit, so string indexes
  // are byte offsets and no multi-byte character is ever split by a chunk boundary.
  let held: Buffer = Buffer.alloc(0);
  /** Stream offset of held[0]. */
  let heldAt = 0;
  const lastStart = new Map<string, number>();
  let findings = 0;

  const scan = (text: string, base: number, final: boolean): DlpFinding | null => {
    for (const detector of detectors) {
      const regex = detector.regex;
      regex.lastIndex = 0;
      for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
        const start = m.index;
        const length = m[0].length;
        if (length === 0) {
          regex.lastIndex = start + 1;
          continue;
        }
        if (!final && start + length === text.length) break;
        // The first held byte was already scanned with the bytes before it (which lookbehinds
        // need, e.g. "not preceded by a digit"); here it has none, so it only serves as context.
        if (start === 0 && base > 0) {
          regex.lastIndex = 1;
          continue;
        }
        if (detector.validate && !detector.validate(m[0])) {
          // A look-alike may hide a real match starting just after it.
          regex.lastIndex = start + 1;
          continue;
        }
        const offset = base + start;
        if (offset <= (lastStart.get(detector.name) ?? -1)) continue;
        lastStart.set(detector.name, offset);
        const finding = { detector: detector.name, offset };
        if (stopOnFirst) return finding;
        if (findings < MAX_FINDINGS) onFinding(finding);
        findings++;
      }
    }
    return null;
  };

  const process = (chunk: Buffer, final: boolean, push: (b: Buffer) => void): DlpFinding | null => {
    const data = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    const found = detectors.length > 0 ? scan(data.toString('latin1'), heldAt, final) : null;
    if (found) return found;
    const keep = final ? 0 : Math.min(holdBack, data.length);
    if (data.length > keep) push(data.subarray(0, data.length - keep));
    // Copy what is held so the large chunk it came from can be freed.
    held = keep > 0 ? Buffer.from(data.subarray(data.length - keep)) : Buffer.alloc(0);
    heldAt += data.length - keep;
    return null;
  };

  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      const found = process(chunk, false, (b) => this.push(b));
      if (found) {
        onFinding(found);
        callback(new DlpMatch(found));
      } else callback();
    },
    flush(callback: TransformCallback) {
      const found = process(Buffer.alloc(0), true, (b) => this.push(b));
      if (found) {
        onFinding(found);
        callback(new DlpMatch(found));
      } else callback();
    },
  });
}
