import { z } from 'zod';
import { section } from '../../sources/fields';
import { BUILTIN_DETECTOR_NAMES, BUILTIN_DETECTORS } from './detectors';
import { checkPattern } from './pattern-safety';
import type { Detector, DlpPolicy } from './dlp-types';

const NAME = /^[a-z][a-z0-9_]{0,63}$/;

export const dlpSchema = section({
  detectors: z.array(z.enum(BUILTIN_DETECTOR_NAMES as [string, ...string[]], { error: `expected one of: ${BUILTIN_DETECTOR_NAMES.join(', ')}` })).optional(),
  patterns: z
    .array(
      section({
        name: z.string().regex(NAME, { error: 'expected a lower-case identifier such as employee_id' }),
        regex: z.string().min(1),
        ignore_case: z.boolean().optional(),
      }),
    )
    .optional(),
  action: z.enum(['deny', 'log'], { error: 'expected deny or log' }),
});

export type RawDlp = z.output<typeof dlpSchema>;

export interface DlpProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/**
 * Compiles a rule's `dlp:` block. `detectors` left out means every built-in detector; `[]`
 * means none (only `patterns`).
 */
export function compileDlp(raw: RawDlp, problems: DlpProblem[]): DlpPolicy {
  const wanted = new Set(raw.detectors ?? BUILTIN_DETECTOR_NAMES);
  const detectors: Detector[] = BUILTIN_DETECTORS.filter((d) => wanted.has(d.name));
  const names = new Set(detectors.map((d) => d.name));
  (raw.patterns ?? []).forEach((pattern, i) => {
    if (names.has(pattern.name) || BUILTIN_DETECTOR_NAMES.includes(pattern.name)) {
      problems.push({ path: ['patterns', i, 'name'], message: `"${pattern.name}" is already a detector name` });
      return;
    }
    const check = checkPattern(pattern.regex);
    if (!check.ok) {
      problems.push({ path: ['patterns', i, 'regex'], message: check.reason });
      return;
    }
    names.add(pattern.name);
    detectors.push({ name: pattern.name, regex: new RegExp(pattern.regex, pattern.ignore_case ? 'gi' : 'g'), maxLength: check.maxLength });
  });
  if (detectors.length === 0) problems.push({ path: ['detectors'], message: 'no detectors: list built-in detectors or add patterns' });
  return Object.freeze({ detectors: Object.freeze(detectors), action: raw.action });
}

/** One line for `tollgate check`. */
export function describeDlp(dlp: DlpPolicy): string {
  return `dlp ${dlp.action}: ${dlp.detectors.map((d) => d.name).join(', ')}`;
}
