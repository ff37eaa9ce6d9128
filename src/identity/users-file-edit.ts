import { readFileSync } from 'node:fs';
import { type Document, YAMLMap, isMap, parseDocument } from 'yaml';
import { parseUsersFile, type UsersTable } from './users-file';
import { writeFileAtomically } from '../sources/atomic-write';

/**
 * Edits of the users file for `tollgate user add/remove`. The file is edited as a YAML
 * document, so comments and the order of entries survive, and every result is validated
 * before it replaces the old file.
 */

const NEW_FILE_HEADER = ` tollgate users file (auth.users_file). Written by \`tollgate user add\`; only scrypt
 hashes are stored. Groups are used by policy rules with \`groups:\`.`;

export interface UsersDocument {
  readonly file: string;
  readonly doc: Document;
  readonly existed: boolean;
}

export function readUsersDocument(file: string): UsersDocument {
  let text: string | null = null;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text === null) {
    const doc = parseDocument('users: {}\n');
    doc.commentBefore = NEW_FILE_HEADER;
    return { file, doc, existed: false };
  }
  // Validate what is there first: the edit must not bury an existing problem.
  parseUsersFile(text, file);
  const doc = parseDocument(text);
  if (!isMap(doc.get('users'))) doc.set('users', doc.createNode({}));
  return { file, doc, existed: true };
}

/** Adds a user, or sets a new password (and groups, when given) for an existing one. */
export function setUser(users: UsersDocument, name: string, encodedHash: string, groups: readonly string[] | null): 'added' | 'updated' {
  const { doc } = users;
  const existing = doc.getIn(['users', name]);
  if (isMap(existing)) {
    existing.set('password', encodedHash);
    if (groups !== null) existing.set('groups', flowList(doc, groups));
    return 'updated';
  }
  const entry = new YAMLMap<string, unknown>();
  entry.set('password', encodedHash);
  entry.set('groups', flowList(doc, groups ?? []));
  // An empty `users: {}` is written in flow style; entries read better in block style.
  const map = doc.get('users');
  if (isMap(map)) map.flow = false;
  doc.setIn(['users', name], entry);
  return 'added';
}

export function removeUser(users: UsersDocument, name: string): boolean {
  return users.doc.deleteIn(['users', name]);
}

function flowList(doc: Document, items: readonly string[]) {
  const node = doc.createNode([...items]);
  node.flow = true;
  return node;
}

/** Validates the edited document, then replaces the file atomically with mode 0600. */
export function writeUsersDocument(users: UsersDocument): UsersTable {
  const text = users.doc.toString({ lineWidth: 0 });
  const table = parseUsersFile(text, users.file);
  // The file holds password hashes: readable by its owner only.
  writeFileAtomically(users.file, text, 0o600);
  return table;
}
