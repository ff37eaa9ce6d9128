import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../sources/config-error';
import { section } from '../sources/fields';
import { type ConfigProblem, parseYaml, problemsFromIssues } from '../sources/yaml-source';
import { type ParsedHash, parsePasswordHash } from './password-hash';

/**
 * The users file (`auth.users_file`):
 *
 *   users:
 *     alice:
 *       password: $scrypt$ln=15,r=8,p=1$...$...   # written by `tollgate user add`
 *       groups: [engineering]
 *
 * Only hashes are stored; `tollgate user add` writes entries. Groups are listed per user.
 */

/** A Basic user-id may not contain ':' (RFC 7617 section 2); the rest keeps names log-safe. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;
export const NAME_HINT = 'names are 1-64 characters: letters, digits and . _ @ + - (starting with a letter or digit)';

export interface UserEntry {
  readonly name: string;
  readonly groups: readonly string[];
  /** The encoded hash as written in the file (identifies the credential for the cache). */
  readonly encoded: string;
  readonly hash: ParsedHash;
}

export interface UsersTable {
  readonly file: string;
  readonly users: ReadonlyMap<string, UserEntry>;
  /** Short hash of the file's content, logged on reload. */
  readonly version: string;
}

const userSchema = section({
  password: z.string({ error: 'expected the password hash written by `tollgate user add`' }),
  groups: z.array(z.string({ error: 'expected a group name' })).default([]),
});

const fileSchema = section({
  // Entries are validated one by one (below) so one bad entry does not hide the others' problems.
  users: z.record(z.string(), z.unknown(), { error: 'expected a mapping of user names' }).nullable().default({}),
});

function displayPath(file: string): string {
  return path.relative(process.cwd(), file) || file;
}

/** Validates users-file text; throws ConfigError naming file, line and the fix for each problem. */
export function parseUsersFile(text: string, file: string): UsersTable {
  const display = displayPath(file);
  const yaml = parseYaml(display, text);
  if (!yaml.ok) throw new ConfigError(yaml.problems);
  const parsed = fileSchema.safeParse(yaml.source.value ?? {});
  if (!parsed.success) throw new ConfigError(problemsFromIssues(yaml.source, parsed.error.issues));
  const problems: ConfigProblem[] = [];
  const users = new Map<string, UserEntry>();
  const at = (...keys: PropertyKey[]): Pick<ConfigProblem, 'file' | 'line' | 'path'> => ({
    file: display,
    line: yaml.source.lineOf(keys),
    path: keys.map(String).join('.'),
  });
  for (const [name, value] of Object.entries(parsed.data.users ?? {})) {
    const checked = userSchema.safeParse(value);
    if (!checked.success) {
      problems.push(...problemsFromIssues(yaml.source, checked.error.issues, ['users', name]));
      continue;
    }
    const entry = checked.data;
    if (!NAME_PATTERN.test(name)) problems.push({ ...at('users', name), message: `invalid user name; ${NAME_HINT}` });
    entry.groups.forEach((group, i) => {
      if (!NAME_PATTERN.test(group)) problems.push({ ...at('users', name, 'groups', i), message: `invalid group name "${group}"; ${NAME_HINT}` });
    });
    const hash = parsePasswordHash(entry.password);
    if (typeof hash === 'string') {
      problems.push({ ...at('users', name, 'password'), message: `not a password hash: ${hash} (set it again with: tollgate user add ${name})` });
      continue;
    }
    users.set(name, { name, groups: Object.freeze([...new Set(entry.groups)]), encoded: entry.password, hash });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { file, users, version: createHash('sha256').update(text).digest('hex').slice(0, 12) };
}

export function loadUsersFile(file: string): UsersTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'file not found (create it with: tollgate user add NAME)' : (err as Error).message;
    throw new ConfigError([{ file: displayPath(file), line: null, path: '', message: `cannot read the users file: ${reason}` }]);
  }
  return parseUsersFile(text, file);
}
