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
 * The symlink through which Kubernetes' kubelet publishes a ConfigMap, Secret or projected
 * volume (its AtomicWriter). An update writes the new files into a fresh `..<timestamp>`
 * directory, points a `..data_tmp` symlink at it and renames that over `..data`; the visible
 * files (`tollgate.yaml -> ..data/tollgate.yaml`) are never written themselves, so a watcher
 * that waits for their names never fires. The rename of `..data` is the one event that says
 * "everything in this volume may have changed".
 */
export const KUBELET_DATA_LINK = '..data';

function isWatched(target: WatchTarget, file: string): boolean {
  if (file === KUBELET_DATA_LINK) return true;
  return target.names ? target.names.has(file) : /\.ya?ml$/.test(file);
}

/**
 * Calls `onChange` once a burst of file events settles. Directories are watched rather than
 * files because editors and config management replace files by rename, which detaches a watch
 * on the old inode, and because a Kubernetes volume changes by a symlink swap in its directory
 * (see KUBELET_DATA_LINK). Generic on purpose: anything reloadable from files (policies, the
 * configuration, the users file, later server certificates) registers its directory and the
 * names it cares about, with its own `onChange`, by calling this again.
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
        if (!isWatched(target, file)) return;
        schedule(file === KUBELET_DATA_LINK ? `${target.dir} (volume update)` : path.join(target.dir, file));
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
