import type { OriginPorts, Subject } from './subjects';

export interface PeerOptions {
  readonly workDir: string;
  readonly repoDir: string;
  readonly originCaFile: string;
  /** The bench CA with its key, for peers that need a CA to mint with. */
  readonly caWithKeyFile: string;
  readonly ports: OriginPorts;
  readonly log: (line: string) => void;
}

export async function startPeers(_options: PeerOptions): Promise<{ subjects: Subject[]; notes: string[] }> {
  return { subjects: [], notes: ['no peers configured yet'] };
}
