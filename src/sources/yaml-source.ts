import { LineCounter, parseDocument, isMap, isPair, isScalar, isSeq, type Node } from 'yaml';
import type { core } from 'zod';

/** One thing wrong with a configuration or policy file, located as precisely as we can. */
export interface ConfigProblem {
  readonly file: string;
  /** 1-based line, when the YAML node could be found. */
  readonly line: number | null;
  /** Key path such as `listen.explicit` or `rules[2].match`; '' for the whole file. */
  readonly path: string;
  readonly message: string;
}

export function formatProblem(problem: ConfigProblem): string {
  const where = problem.line === null ? problem.file : `${problem.file}:${problem.line}`;
  return problem.path === '' ? `${where}: ${problem.message}` : `${where}: ${problem.path}: ${problem.message}`;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

export interface YamlSource {
  readonly file: string;
  /** The plain JavaScript value of the document. */
  readonly value: unknown;
  /** The line of the node at `path`, or of its closest ancestor that exists. */
  lineOf(path: readonly PropertyKey[]): number | null;
}

export type YamlParseResult = { readonly ok: true; readonly source: YamlSource } | { readonly ok: false; readonly problems: readonly ConfigProblem[] };

function childNode(node: unknown, key: PropertyKey): { node: unknown; keyNode: unknown } | null {
  if (isMap(node)) {
    for (const item of node.items) {
      if (isPair(item) && isScalar(item.key) && String(item.key.value) === String(key)) return { node: item.value, keyNode: item.key };
    }
    return null;
  }
  if (isSeq(node) && typeof key === 'number') {
    const item = node.items[key];
    return item === undefined ? null : { node: item, keyNode: item };
  }
  return null;
}

function startOf(node: unknown): number | null {
  const range = (node as Node | null)?.range;
  return Array.isArray(range) ? range[0] : null;
}

/** Parses YAML text, keeping enough of the document to point problems at lines. */
export function parseYaml(file: string, text: string): YamlParseResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((error) => ({
        file,
        line: error.linePos?.[0]?.line ?? null,
        path: '',
        // With prettyErrors the message ends in a code frame; the first line is the sentence.
        message: `invalid YAML: ${(error.message.split('\n')[0] ?? error.code).replace(/ at line \d+, column \d+:?$/, '')}`,
      })),
    };
  }
  const lineOf = (path: readonly PropertyKey[]): number | null => {
    let node: unknown = doc.contents;
    let offset = startOf(node);
    for (const key of path) {
      const child = childNode(node, key);
      if (!child) break;
      // Point at the key of a mapping entry: that is where a person looks for it.
      offset = startOf(child.keyNode) ?? startOf(child.node) ?? offset;
      node = child.node;
    }
    return offset === null ? null : lineCounter.linePos(offset).line;
  };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // toJS throws (ReferenceError, not a parse error) for an alias whose anchor is missing
    // ("*x") and for alias expansion past maxAliasCount (a "billion laughs" document).
    return { ok: false, problems: [{ file, line: null, path: '', message: `invalid YAML: ${(err as Error).message}` }] };
  }
  return { ok: true, source: { file, value, lineOf } };
}

/** Turns schema issues into located problems. Unknown keys point at the key itself. */
export function problemsFromIssues(source: YamlSource, issues: readonly core.$ZodIssue[], prefix: readonly PropertyKey[] = []): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const keyPath = [...path, key];
        problems.push({ file: source.file, line: source.lineOf(keyPath), path: formatPath(keyPath), message: `unknown key; ${issue.message}` });
      }
      continue;
    }
    problems.push({ file: source.file, line: source.lineOf(path), path: formatPath(path), message: issue.message });
  }
  return problems;
}
