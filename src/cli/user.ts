import path from 'node:path';
import { UsageError } from './args';
import { loadConfig } from '../config/load-config';
import { hashPassword } from '../identity/password-hash';
import { loadUsersFile, NAME_HINT, NAME_PATTERN } from '../identity/users-file';
import { readUsersDocument, removeUser, setUser, writeUsersDocument } from '../identity/users-file-edit';

export interface UserCommandInput {
  readonly configPath: string;
  /** --users-file, which wins over the configuration's auth.users_file. */
  readonly usersFile: string | undefined;
  readonly out: (line: string) => void;
}

const MIN_PASSWORD = 8;
const MAX_PASSWORD = 1024;

/** The users file: --users-file, else auth.users_file of the configuration. */
function resolveUsersFile(input: UserCommandInput): string {
  if (input.usersFile !== undefined) return path.resolve(input.usersFile);
  const config = loadConfig(input.configPath);
  if (config.auth.usersFile === null) {
    throw new UsageError(`${input.configPath} sets no auth.users_file; set it (e.g. auth: { users_file: users.yaml }) or pass --users-file FILE`);
  }
  return config.auth.usersFile;
}

function checkName(kind: string, name: string): void {
  if (!NAME_PATTERN.test(name)) throw new UsageError(`invalid ${kind} name "${name}": ${NAME_HINT}`);
}

function checkPassword(password: string): void {
  if (password.length < MIN_PASSWORD) throw new UsageError(`the password must be at least ${MIN_PASSWORD} characters`);
  if (password.length > MAX_PASSWORD) throw new UsageError(`the password must be at most ${MAX_PASSWORD} characters`);
  if (/[\u0000-\u001f\u007f]/.test(password)) throw new UsageError('the password may not contain control characters');
}

export async function runUserAdd(input: UserCommandInput, name: string, groups: readonly string[] | null, readPassword: () => Promise<string>): Promise<void> {
  checkName('user', name);
  for (const group of groups ?? []) checkName('group', group);
  const file = resolveUsersFile(input);
  // Read and validate the file before asking for a password nobody can store.
  readUsersDocument(file);
  const password = await readPassword();
  checkPassword(password);
  const encoded = await hashPassword(password);
  const users = readUsersDocument(file);
  const result = setUser(users, name, encoded, groups);
  const table = writeUsersDocument(users);
  const entry = table.users.get(name)!;
  input.out(`user ${name} ${result} in ${file} (groups: ${entry.groups.join(', ') || 'none'})`);
  input.out('A running gateway picks this up by itself (file watch), or on SIGHUP.');
}

export function runUserRemove(input: UserCommandInput, name: string): boolean {
  const file = resolveUsersFile(input);
  const users = readUsersDocument(file);
  if (!users.existed || !removeUser(users, name)) {
    input.out(`no user ${name} in ${file}`);
    return false;
  }
  writeUsersDocument(users);
  input.out(`user ${name} removed from ${file}`);
  return true;
}

export function runUserList(input: UserCommandInput): void {
  const file = resolveUsersFile(input);
  const table = loadUsersFile(file);
  input.out(`${file}: ${table.users.size} user${table.users.size === 1 ? '' : 's'}`);
  const width = Math.max(4, ...[...table.users.keys()].map((n) => n.length));
  input.out(`${'USER'.padEnd(width)}  GROUPS`);
  for (const entry of [...table.users.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    input.out(`${entry.name.padEnd(width)}  ${entry.groups.join(', ') || '-'}`);
  }
}

/** Reads the password from stdin (`--password-stdin`): everything up to EOF, minus one newline. */
export async function readPasswordFromStdin(stdin: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stdin) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    length += buffer.length;
    if (length > MAX_PASSWORD * 4 + 2) throw new UsageError(`the password must be at most ${MAX_PASSWORD} characters`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Prompts on the terminal without echo, twice, and insists both entries agree. */
export async function promptPassword(stdin: NodeJS.ReadStream, stderr: NodeJS.WriteStream): Promise<string> {
  if (!stdin.isTTY) throw new UsageError('no terminal to prompt for the password on: pass it on stdin with --password-stdin');
  const first = await promptHidden(stdin, stderr, 'Password: ');
  const second = await promptHidden(stdin, stderr, 'Repeat password: ');
  if (first !== second) throw new UsageError('the passwords differ; nothing was changed');
  return first;
}

function promptHidden(stdin: NodeJS.ReadStream, stderr: NodeJS.WriteStream, prompt: string): Promise<string> {
  stderr.write(prompt);
  // Raw mode: the terminal does not echo, and we see each key (Ctrl-C arrives as a byte).
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (): void => {
      stdin.removeListener('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      stderr.write('\n');
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          finish();
          resolve(value);
          return;
        }
        if (ch === '\u0003' || ch === '\u0004') {
          finish();
          reject(new UsageError('cancelled; nothing was changed'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
