/**
 * Upload inspection (DLP): detectors run over request bodies as they stream. A finding names
 * the detector and the byte offset where the match starts, never the matched bytes: the value
 * is the secret the rule exists to protect, so it must not end up in a log either.
 */
export interface Detector {
  readonly name: string;
  /** Global regular expression, matched against the body decoded as Latin-1 (one char per byte). */
  readonly regex: RegExp;
  /** Longest text (match plus any lookaround context) the regex can need; sizes the overlap tail. */
  readonly maxLength: number;
  /** Rejects look-alikes the regex cannot (e.g. the Luhn check of card numbers). */
  readonly validate?: (match: string) => boolean;
}

export type DlpAction = 'deny' | 'log';

export interface DlpPolicy {
  readonly detectors: readonly Detector[];
  readonly action: DlpAction;
}

export interface DlpFinding {
  readonly detector: string;
  /** Byte offset in the request body where the match starts. */
  readonly offset: number;
}
