import { readFileSync } from 'node:fs';
import { loadConfig } from '../config/load-config';
import type { PinnedName } from '../terminals/pinning-monitor';

interface PinningState {
  readonly written: string;
  readonly mode: string;
  readonly names: readonly PinnedName[];
}

/** `tollgate pinning`: the names clients were seen to pin, from the running gateway's state file. */
export function runPinningReport(configPath: string, out: (line: string) => void): void {
  const config = loadConfig(configPath);
  const file = config.pinning.stateFile;
  if (!file) {
    out('pinning.state_file is null: the gateway does not write its pinning state (see its log for "certificate pinning")');
    return;
  }
  let state: PinningState;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as PinningState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      out(`no pinning seen yet (${file} does not exist)`);
      return;
    }
    throw err;
  }
  out(`pinning state written ${state.written}; mode ${state.mode}; threshold ${config.pinning.minClients} distinct clients`);
  if (state.names.length === 0) {
    out('no names with rejected certificates');
    return;
  }
  const rows = [['NAME', 'CLIENTS', 'FAILURES', 'LAST SIGNAL', 'LAST SEEN', 'SPLICED UNTIL']];
  for (const n of state.names) rows.push([n.name, String(n.clients), String(n.failures), n.lastSignal, n.lastSeen, n.splicedUntil ?? '-']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows)
    out(
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
}
