import { Transform, type TransformCallback } from 'node:stream';
import type { Detector, DlpFinding } from '../policy/dlp/dlp-types';

/** Findings kept per direction in report-only mode; enough to audit without growing with the stream. */
const MAX_FINDINGS = 16;

/** Raised by a stream scanner in cut mode on its first finding; the relay ends there. */
export class StreamDlpMatch extends Error {
  override readonly name = 'StreamDlpMatch';
  constructor(readonly finding: DlpFinding) {
    super(`stream cut: ${finding.detector} detected at byte ${finding.offset}`);
  }
}

export interface StreamScannerOptions {
  readonly detectors: readonly Detector[];
  /** true: fail with StreamDlpMatch on the first finding, before that chunk is passed on. */
  readonly cut: boolean;
  readonly onFinding: (finding: DlpFinding) => void;
}

/**
 * Scans an interactive stream (IMAP, SMTP, a database protocol) for detector matches. Unlike
 * the request-body scanner (policy/dlp/scanner.ts), it holds nothing back: a protocol that waits
 * for the answer to a short command would stall if the command's last bytes were kept until
 * more arrived. Instead it keeps a sliding window of the last bytes it passed on (the longest
 * text any detector can need) and scans window + new chunk, so a secret split across two reads
 * is still found. In cut mode the chunk that completes a match is not passed on; the part of
 * the secret in earlier chunks already was, which is the price of not stalling. Memory: one
 * chunk plus the window.
 */
export function createStreamScanner(options: StreamScannerOptions): Transform {
  const { detectors, cut, onFinding } = options;
  const windowBytes = Math.max(1, ...detectors.map((d) => d.maxLength));
  let window: Buffer = Buffer.alloc(0);
  /** Stream offset of window[0]. */
  let windowAt = 0;
  let findings = 0;

  const scan = (data: Buffer): DlpFinding | null => {
    const text = data.toString('latin1');
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
        // Wholly inside the window: seen (and reported) with the chunk before.
        if (start + length <= window.length) continue;
        if (detector.validate && !detector.validate(m[0])) {
          regex.lastIndex = start + 1;
          continue;
        }
        const finding = { detector: detector.name, offset: windowAt + start };
        if (cut) return finding;
        if (findings < MAX_FINDINGS) onFinding(finding);
        findings++;
      }
    }
    return null;
  };

  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      const data = window.length === 0 ? chunk : Buffer.concat([window, chunk]);
      const found = detectors.length > 0 ? scan(data) : null;
      if (found) {
        onFinding(found);
        callback(new StreamDlpMatch(found));
        return;
      }
      const keep = Math.min(windowBytes, data.length);
      // A copy, so the large chunk the window came from can be freed.
      window = Buffer.from(data.subarray(data.length - keep));
      windowAt += data.length - keep;
      callback(null, chunk);
    },
  });
}
