import { type FSWatcher, watch } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logging/logger';

export interface WatchTarget {
  /** A directory to watch. */
  readonly dir: string;
  /** Only these file names in it (null = every *.yaml / *.yml file). */
  readonly names: ReadonlySet<string> | null;
}

/**
 * Calls `onChange` once a burst of file events settles. Directories are watched rather than
 * files because editors and config management replace files by rename, which detaches a watch
 * on the old inode.
 */
export function watchForChanges(targets: readonly WatchTarget[], onChange: (changed: string) => void, logger: Logger, settleMs = 250): () => void {
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | null = null;
  let last = '';
  const schedule = (file: string): void => {
    last = file;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      onChange(last);
    }, settleMs);
  };
  for (const target of targets) {
    try {
      const watcher = watch(target.dir, { persistent: false }, (_event, name) => {
        const file = name?.toString() ?? '';
        if (target.names ? target.names.has(file) : /\.ya?ml$/.test(file)) schedule(path.join(target.dir, file));
      });
      watcher.on('error', (err) => logger.warn({ err, dir: target.dir }, 'file watch failed; reload with SIGHUP'));
      watchers.push(watcher);
    } catch (err) {
      logger.warn({ err, dir: target.dir }, 'cannot watch for changes; reload with SIGHUP');
    }
  }
  return () => {
    if (timer) clearTimeout(timer);
    for (const watcher of watchers) watcher.close();
  };
}
