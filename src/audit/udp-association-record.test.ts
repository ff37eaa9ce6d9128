import { documentedFields, recordFields } from '../../test/integration/support/audit-doc';
import { udpAssociationRecord } from './records';

/** docs/audit.md describes every field of a `udp_association` record, and only those. */
const record = udpAssociationRecord({
  flowId: 'Xk3v9QmA1bZc',
  frontend: 'socks',
  clientAddress: '192.0.2.10',
  clientPort: 50123,
  user: 'alice',
  startTime: new Date(0),
  relayAddress: '192.0.2.1:40000',
  clientUdp: '192.0.2.10:5353',
  destinations: [{ target: 'dns.example:53', address: '203.0.113.53', action: 'splice', rule: 'dns', datagrams_to_origin: 1, bytes_to_origin: 30, datagrams_from_origin: 1, bytes_from_origin: 46 }],
  datagramsFromClient: 1,
  datagramsToClient: 1,
  bytesFromClient: 30,
  bytesToClient: 46,
  dropped: { fragment: 1 },
  policyVersion: 'abc123',
  durationMs: 12.5,
  close: 'client-closed',
});

test('udp_association records: every field documented, every documented field present', () => {
  const documented = documentedFields().udp_association;
  // `dropped` is a map keyed by reason (documented in its row), like the header maps.
  const fields = recordFields(record).filter((f) => !f.startsWith('dropped.'));
  expect(fields.filter((f) => !documented.has(f))).toEqual([]);
  expect([...documented].filter((f) => !fields.includes(f))).toEqual([]);
  expect(record.type).toBe('udp_association');
  expect(record.time).toBe('1970-01-01T00:00:00.000Z');
});
