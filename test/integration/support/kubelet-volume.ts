import { existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A ConfigMap or Secret volume as the kubelet publishes it (pkg/volume/util/atomic_writer.go),
 * step for step, so reload tests see exactly the file-system events a pod sees:
 *
 *   dir/..2026_01_02_03_04_05.000000001/tollgate.yaml   the payload, in a timestamped directory
 *   dir/..data -> ..2026_01_02_03_04_05.000000001      the one symlink that is swapped
 *   dir/tollgate.yaml -> ..data/tollgate.yaml          what the container opens
 *
 * An update writes a new timestamped directory, creates `..data_tmp` pointing at it, renames
 * `..data_tmp` over `..data` (the atomic step), adds links for new names, removes links for
 * names no longer in the payload, and deletes the old directory. The visible files are never
 * written in place.
 */
export class KubeletVolume {
  private generation = 0;

  constructor(
    readonly dir: string,
    private readonly mode = 0o644,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  /** Publishes `files` (name -> content) as the volume's whole new payload. */
  publish(files: Readonly<Record<string, string>>): void {
    const old = existsSync(path.join(this.dir, '..data')) ? readlinkSync(path.join(this.dir, '..data')) : null;
    this.generation++;
    const stamp = `..2026_01_02_03_04_05.${String(this.generation).padStart(9, '0')}`;
    const fresh = path.join(this.dir, stamp);
    mkdirSync(fresh);
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(fresh, name), text, { mode: this.mode });
    const tmp = path.join(this.dir, '..data_tmp');
    symlinkSync(stamp, tmp);
    renameSync(tmp, path.join(this.dir, '..data'));
    for (const name of Object.keys(files)) {
      if (!existsSync(path.join(this.dir, name))) symlinkSync(path.join('..data', name), path.join(this.dir, name));
    }
    for (const entry of readdirSync(this.dir)) {
      if (!entry.startsWith('..') && !(entry in files)) rmSync(path.join(this.dir, entry));
    }
    if (old) rmSync(path.join(this.dir, old), { recursive: true });
  }
}
