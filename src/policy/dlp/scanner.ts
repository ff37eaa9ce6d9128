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
 * Scans a byte stream for detector matches with bounded memory, one chunk at a time. The last
 * `holdBack` bytes (the longest text any detector can need) are held until the next chunk
 * arrives, so that
 *   - a match split across chunk boundaries is still seen whole, and
 *   - in deny mode the bytes of a match are never passed on before it is recognised.
 * A match that ends exactly at the end of the data seen so far could still grow, so it is
 * decided only once more data (or the end) arrives. Memory: one chunk plus `holdBack` bytes.
 */
export class DlpScan {
  private readonly holdBack: number;
  private held: Buffer = Buffer.alloc(0);
  /** Stream offset of held[0]: every byte before it is scanned and can start no later match. */
  private heldAt = 0;
  private readonly lastStart = new Map<string, number>();
  private findings = 0;

  constructor(private readonly options: ScannerOptions) {
    // One byte more than the longest match: the first held byte is context only (see scan).
    this.holdBack = Math.max(1, ...options.detectors.map((d) => d.maxLength)) + 1;
  }

  /** Bytes of the stream that are scanned and safe to pass on (a match can no longer include them). */
  get cleared(): number {
    return this.heldAt;
  }

  /**
   * Scans `chunk` after what was held; `pass` receives the bytes that are now safe to pass on.
   * Returns the finding that stops the stream (deny mode), else null; `final` at the end.
   */
  feed(chunk: Buffer, final: boolean, pass: (bytes: Buffer) => void): DlpFinding | null {
    const data = this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]);
    // Offsets are of whole bytes: Latin-1 maps each byte to one UTF-16 unit, so string indexes
    // are byte offsets and no multi-byte character is ever split by a chunk boundary.
    const found = this.options.detectors.length > 0 ? this.scan(data.toString('latin1'), this.heldAt, final) : null;
    if (found) return found;
    const keep = final ? 0 : Math.min(this.holdBack, data.length);
    if (data.length > keep) pass(data.subarray(0, data.length - keep));
    // Copy what is held so the large chunk it came from can be freed.
    this.held = keep > 0 ? Buffer.from(data.subarray(data.length - keep)) : Buffer.alloc(0);
    this.heldAt += data.length - keep;
    return null;
  }

  private scan(text: string, base: number, final: boolean): DlpFinding | null {
    const { detectors, stopOnFirst, onFinding } = this.options;
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
        if (offset <= (this.lastStart.get(detector.name) ?? -1)) continue;
        this.lastStart.set(detector.name, offset);
        const finding = { detector: detector.name, offset };
        if (stopOnFirst) return finding;
        if (this.findings < MAX_FINDINGS) onFinding(finding);
        this.findings++;
      }
    }
    return null;
  }
}

/** A DlpScan as a stream stage: bytes pass once scanned; deny mode fails with DlpMatch. */
export function createDlpScanner(options: ScannerOptions): Transform {
  const scan = new DlpScan(options);
  const stop = (found: DlpFinding, callback: TransformCallback): void => {
    options.onFinding(found);
    callback(new DlpMatch(found));
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      const found = scan.feed(chunk, false, (b) => this.push(b));
      if (found) stop(found, callback);
      else callback();
    },
    flush(callback: TransformCallback) {
      const found = scan.feed(Buffer.alloc(0), true, (b) => this.push(b));
      if (found) stop(found, callback);
      else callback();
    },
  });
}
