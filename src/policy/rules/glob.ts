/**
 * Globs for HTTP rule conditions:
 *   `*`  any run of characters except `/` (within one path segment)
 *   `**` any run of characters, `/` included
 *   `?`  one character other than `/`
 * Everything else is literal. Matching simulates the glob as a small NFA, so it is
 * O(text × glob) whatever the pattern — a backtracking regular expression built from
 * `*a*a*a*` can take exponential time on a crafted path, and paths come from clients.
 */
export type GlobMatcher = (text: string) => boolean;

type Token = { readonly kind: 'literal'; readonly char: string } | { readonly kind: 'one' } | { readonly kind: 'star' } | { readonly kind: 'globstar' };

function tokenize(glob: string): Token[] {
  const tokens: Token[] = [];
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        while (glob[i + 1] === '*') i++;
        tokens.push({ kind: 'globstar' });
      } else tokens.push({ kind: 'star' });
    } else if (c === '?') tokens.push({ kind: 'one' });
    else tokens.push({ kind: 'literal', char: c });
  }
  return tokens;
}

function isStar(token: Token | undefined): boolean {
  return token !== undefined && (token.kind === 'star' || token.kind === 'globstar');
}

/** Adds to `states` every state reachable by letting stars match nothing. */
function close(tokens: readonly Token[], states: Uint8Array): void {
  for (let s = 0; s < tokens.length; s++) if (states[s] && isStar(tokens[s])) states[s + 1] = 1;
}

export function compileGlob(glob: string, options: { caseInsensitive?: boolean } = {}): GlobMatcher {
  const fold = options.caseInsensitive === true;
  const source = fold ? glob.toLowerCase() : glob;
  if (!/[*?]/.test(source)) return fold ? (text) => text.toLowerCase() === source : (text) => text === source;
  const tokens = tokenize(source);
  const size = tokens.length + 1;
  return (input) => {
    const text = fold ? input.toLowerCase() : input;
    let states = new Uint8Array(size);
    let next = new Uint8Array(size);
    states[0] = 1;
    close(tokens, states);
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      next.fill(0);
      let alive = false;
      for (let s = 0; s < tokens.length; s++) {
        if (!states[s]) continue;
        const token = tokens[s]!;
        switch (token.kind) {
          case 'globstar':
            next[s] = 1;
            alive = true;
            break;
          case 'star':
            if (c !== '/') {
              next[s] = 1;
              alive = true;
            }
            break;
          case 'one':
            if (c !== '/') {
              next[s + 1] = 1;
              alive = true;
            }
            break;
          case 'literal':
            if (token.char === c) {
              next[s + 1] = 1;
              alive = true;
            }
            break;
        }
      }
      if (!alive) return false;
      close(tokens, next);
      [states, next] = [next, states];
    }
    return states[tokens.length] === 1;
  };
}
