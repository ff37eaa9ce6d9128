import dgram from 'node:dgram';
import { isIP } from 'node:net';

/**
 * A tiny authoritative DNS server over UDP on 127.0.0.1 for resolver tests: answers A and AAAA
 * from a table with a chosen TTL, NXDOMAIN for names it does not know, and counts queries per
 * name and type. Enough of RFC 1035 for c-ares: one question, answers compressed to it.
 */
export interface DnsZoneEntry {
  readonly a?: readonly string[];
  readonly aaaa?: readonly string[];
  readonly ttl: number;
}

export interface DnsServer {
  /** `127.0.0.1:PORT`, as upstream.dns_servers takes it. */
  readonly address: string;
  readonly zone: Map<string, DnsZoneEntry>;
  /** Queries seen for a name (lower case), optionally of one type (`A`, `AAAA`). */
  queries(name: string, type?: 'A' | 'AAAA'): number;
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_AAAA = 28;

function readName(msg: Buffer, offset: number): { name: string; next: number } | null {
  const labels: string[] = [];
  let at = offset;
  for (let guard = 0; guard < 128; guard++) {
    const length = msg[at];
    if (length === undefined) return null;
    if (length === 0) return { name: labels.join('.').toLowerCase(), next: at + 1 };
    if (length > 63) return null;
    labels.push(msg.subarray(at + 1, at + 1 + length).toString('latin1'));
    at += 1 + length;
  }
  return null;
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(parseInt(g, 16), i * 2);
  return out;
}

function answer(query: Buffer, zone: ReadonlyMap<string, DnsZoneEntry>, count: (name: string, type: number) => void): Buffer | null {
  if (query.length < 12) return null;
  const question = readName(query, 12);
  if (!question || question.next + 4 > query.length) return null;
  const qtype = query.readUInt16BE(question.next);
  count(question.name, qtype);
  const entry = zone.get(question.name);
  const records = entry ? (qtype === TYPE_A ? (entry.a ?? []) : qtype === TYPE_AAAA ? (entry.aaaa ?? []) : []) : [];
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2);
  const rd = (query[2] ?? 0) & 0x01;
  header[2] = 0x84 | rd; // QR, AA, RD copied
  header[3] = entry ? 0x00 : 0x03; // NOERROR (NODATA when empty) or NXDOMAIN
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  const parts = [header, query.subarray(12, question.next + 4)];
  for (const address of records) {
    const data = qtype === TYPE_A && isIP(address) === 4 ? Buffer.from(address.split('.').map(Number)) : ipv6Bytes(address);
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
    rr.writeUInt16BE(qtype, 2);
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(entry!.ttl, 6);
    rr.writeUInt16BE(data.length, 10);
    parts.push(rr, data);
  }
  return Buffer.concat(parts);
}

export async function startDnsServer(zone: Record<string, DnsZoneEntry>): Promise<DnsServer> {
  const table = new Map(Object.entries(zone).map(([name, entry]) => [name.toLowerCase(), entry]));
  const counts = new Map<string, number>();
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, remote) => {
    const reply = answer(msg, table, (name, type) => {
      const key = `${name}/${type === TYPE_A ? 'A' : type === TYPE_AAAA ? 'AAAA' : type}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    });
    if (reply) socket.send(reply, remote.port, remote.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    zone: table,
    queries: (name, type) => {
      const n = name.toLowerCase();
      if (type) return counts.get(`${n}/${type}`) ?? 0;
      return (counts.get(`${n}/A`) ?? 0) + (counts.get(`${n}/AAAA`) ?? 0);
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
