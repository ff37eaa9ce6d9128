import { RegExpParser, type AST } from '@eslint-community/regexpp';

/** Longest match a user pattern may have; also the scanner's overlap tail per pattern. */
const MAX_PATTERN_MATCH_LENGTH = 1024;
/**
 * Upper bound on the backtracking a pattern can do from one start position, as the product of
 * the ranges of its variable repetitions (`\w{0,100}\w{0,100}\w{0,100}x` would try ~10^6 ways
 * at every byte of an upload).
 */
const MAX_PATTERN_BACKTRACKING = 65_536;

export type PatternCheck = { readonly ok: true; readonly maxLength: number } | { readonly ok: false; readonly reason: string };

class Unsafe extends Error {}

interface Walk {
  backtracking: number;
}

function alternativesLength(alternatives: readonly AST.Alternative[], walk: Walk, insideQuantifier: boolean): number {
  let longest = 0;
  for (const alternative of alternatives) {
    let length = 0;
    for (const element of alternative.elements) length += elementLength(element, walk, insideQuantifier);
    longest = Math.max(longest, length);
  }
  return longest;
}

function containsAlternation(element: AST.QuantifiableElement): boolean {
  return (element.type === 'Group' || element.type === 'CapturingGroup') && element.alternatives.length > 1;
}

/** Longest text an element can match; throws Unsafe for shapes that can backtrack without bound. */
function elementLength(element: AST.Element, walk: Walk, insideQuantifier: boolean): number {
  switch (element.type) {
    case 'Character':
    case 'CharacterSet':
    case 'CharacterClass':
    case 'ExpressionCharacterClass':
      return 1;
    case 'Backreference':
      throw new Unsafe('backreferences are not allowed (they can take exponential time)');
    case 'Group':
    case 'CapturingGroup':
      return alternativesLength(element.alternatives, walk, insideQuantifier);
    case 'Assertion':
      // Lookarounds read context around the match: the overlap tail has to hold it too.
      if (element.kind === 'lookahead' || element.kind === 'lookbehind') return alternativesLength(element.alternatives, walk, insideQuantifier);
      return 0;
    case 'Quantifier': {
      if (!Number.isFinite(element.max)) throw new Unsafe(`unbounded repetition "${element.raw}" is not allowed; give it an upper bound, e.g. {1,64}`);
      if (insideQuantifier) throw new Unsafe(`nested repetition "${element.raw}" inside a repeated group can take exponential time`);
      if (containsAlternation(element.element)) throw new Unsafe(`a repeated alternation "${element.raw}" can take exponential time; repeat a character class instead`);
      walk.backtracking *= element.max - element.min + 1;
      return element.max * elementLength(element.element, walk, true);
    }
  }
}

/**
 * Checks a user's DLP pattern before it is compiled: well-formed, every repetition bounded, no
 * nested or alternating repetition, no backreferences, and a bounded longest match. Patterns
 * come from policy files, but they run over every byte uploaded through the gateway, so a
 * pattern that can backtrack catastrophically is refused at load rather than discovered as a
 * stalled event loop.
 */
export function checkPattern(source: string): PatternCheck {
  let ast: AST.Pattern;
  try {
    ast = new RegExpParser({ ecmaVersion: 2024 }).parsePattern(source, 0, source.length, { unicode: false });
  } catch (err) {
    return { ok: false, reason: `not a valid regular expression: ${(err as Error).message}` };
  }
  const walk: Walk = { backtracking: 1 };
  let maxLength: number;
  try {
    maxLength = alternativesLength(ast.alternatives, walk, false);
  } catch (err) {
    if (err instanceof Unsafe) return { ok: false, reason: err.message };
    throw err;
  }
  if (maxLength === 0) return { ok: false, reason: 'the pattern matches only empty text' };
  if (maxLength > MAX_PATTERN_MATCH_LENGTH) return { ok: false, reason: `the pattern can match up to ${maxLength} bytes; at most ${MAX_PATTERN_MATCH_LENGTH} are allowed` };
  if (walk.backtracking > MAX_PATTERN_BACKTRACKING) {
    return { ok: false, reason: `the pattern's repetitions can combine in ${walk.backtracking} ways at each position (at most ${MAX_PATTERN_BACKTRACKING}); narrow the {min,max} ranges` };
  }
  return { ok: true, maxLength };
}
