import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

/**
 * Writes a file so that a reader (the running gateway reloading, a restart after a crash) sees
 * the old content or the new, never half of it: a temporary file in the same directory, created
 * with `mode` from the start (a CA key or a users file is never readable by others, not even
 * for a moment), written and fsynced, renamed over the target, and the directory fsynced so the
 * rename survives a power cut. The one writer of every file tollgate owns.
 */
export function writeFileAtomically(file: string, data: string | Buffer, mode: number): void {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', mode);
  try {
    // The creation mode is filtered by the umask; this sets exactly `mode`.
    fchmodSync(fd, mode);
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  try {
    const dirFd = openSync(dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // Directory fsync is not supported everywhere; the rename itself is still atomic.
  }
}
