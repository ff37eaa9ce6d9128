import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Every in-page link of the README (`[text](#anchor)`) lands on a heading, with the anchors
 * GitHub derives from headings: lower case, punctuation other than `-` and `_` dropped, spaces
 * to hyphens, a repeated heading numbered `-1`, `-2`. The table of contents is the first thing
 * a reader uses; a renamed section must not leave it pointing nowhere.
 */
const README = readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');

function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6} (.+)$/.exec(line);
    if (!heading) continue;
    const base = slug(heading[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

describe('README in-page links', () => {
  test('every #anchor names a heading', () => {
    const known = anchors(README);
    const links = [...README.matchAll(/\]\(#([^)\s]+)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(20);
    expect(links.filter((l) => !known.has(l))).toEqual([]);
  });

  test("the slug rules match GitHub on the README's own kinds of heading", () => {
    expect(slug('HTTP/2')).toBe('http2');
    expect(slug('Reverse proxy (ingress)')).toBe('reverse-proxy-ingress');
    expect(slug('1. Before you start')).toBe('1-before-you-start');
    expect(slug('Writing a policy: every rule kind')).toBe('writing-a-policy-every-rule-kind');
    expect([...anchors('# A\n## A\n```\n# A\n```\n')]).toEqual(['a', 'a-1']);
  });
});
