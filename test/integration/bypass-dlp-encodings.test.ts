import { writeFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { RequestRecord } from '../../src/audit/record-fields';
import { AWS_KEY, startLabGateway, startLabOrigin, type LabOrigin } from './support/bypass-lab';
import type { TestGateway } from './support/gateway';
import { tempDir } from './support/pki';
import { curl } from './support/run';

/**
 * Second review, item 4: DLP read only the bytes as sent, so the same secret in a gzip upload
 * (Content-Encoding) or percent-encoded in an HTML form body passed. Servers undo both before
 * they read the body; DLP now scans that view too, and refuses in deny mode what it cannot
 * decode. The bytes forwarded are always the client's own. Lab rule `storage`: DLP
 * aws_access_key_id, action deny.
 */
describe('bypass: a secret in a compressed or form-encoded upload', () => {
  let lab: LabOrigin;
  let gw: TestGateway;
  const dir = tempDir('dlp-encodings');

  beforeAll(async () => {
    lab = await startLabOrigin();
    gw = await startLabGateway(lab);
  });

  afterAll(async () => {
    await gw?.stop();
    await lab?.close();
  });

  // HTTP/1.1 to the gateway, so HTTP/1.1 to the origin: there the lab can tell an aborted
  // request from a complete one (Node's HTTP/2 compatibility API ends a reset stream too).
  const upload = (file: string, urlPath: string, headers: string[]) =>
    curl(['--http1.1', '-x', gw.proxy, '--cacert', gw.caFile, ...headers.flatMap((h) => ['-H', h]), '--data-binary', `@${file}`, `https://storage.test:${lab.httpsPort}${urlPath}`]);

  const record = async (urlPath: string): Promise<RequestRecord | undefined> => (await gw.audit()).find((r): r is RequestRecord => r.type === 'request' && r.path === urlPath);

  test.each([
    ['gzip', (b: Buffer) => zlib.gzipSync(b)],
    ['deflate', (b: Buffer) => zlib.deflateSync(b)],
    ['br', (b: Buffer) => zlib.brotliCompressSync(b)],
  ])('Content-Encoding: %s carrying a key is refused; the origin never gets the request whole', async (coding, compress) => {
    const file = path.join(dir, `key.${coding}`);
    writeFileSync(file, compress(Buffer.from(`${'x'.repeat(20_000)} key=${AWS_KEY} ${'y'.repeat(20_000)}`)));
    const urlPath = `/public/upload-${coding}`;
    const res = await upload(file, urlPath, [`Content-Encoding: ${coding}`, 'Content-Type: application/octet-stream']);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/aws_access_key_id/);
    for (const seen of lab.requestsFor(urlPath)) expect(seen.complete).toBe(false);
    expect(await record(urlPath)).toMatchObject({ status: 403, action: 'deny', decision_code: 'dlp' });
  });

  test('HTTP/2 to the gateway and the origin: a gzip upload carrying a key is refused, and what reached the origin never decodes to it', async () => {
    const file = path.join(dir, 'key-h2.gz');
    const compressed = zlib.gzipSync(Buffer.from(`${'x'.repeat(20_000)} key=${AWS_KEY} ${'y'.repeat(20_000)}`));
    writeFileSync(file, compressed);
    const res = await curl(['--http2', '-x', gw.proxy, '--cacert', gw.caFile, '-H', 'Content-Encoding: gzip', '--data-binary', `@${file}`, `https://storage.test:${lab.httpsPort}/public/upload-h2`]);
    expect(res.status).toBe(403);
    for (const seen of lab.requestsFor('/public/upload-h2')) {
      expect(seen.httpVersion).toBe('2.0');
      const received = Buffer.from(seen.body, 'latin1');
      expect(received.length).toBeLessThan(compressed.length);
      const decoded = received.length === 0 ? '' : zlib.gunzipSync(received, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString('latin1');
      expect(decoded).not.toContain(AWS_KEY);
    }
    expect(await record('/public/upload-h2')).toMatchObject({ status: 403, action: 'deny', decision_code: 'dlp', http_version: '2.0' });
  });

  test('a percent-encoded key in a form body is refused', async () => {
    const file = path.join(dir, 'form.txt');
    writeFileSync(file, `note=hello&key=%41%4B%49%41${AWS_KEY.slice(4)}`);
    const res = await upload(file, '/public/form', ['Content-Type: application/x-www-form-urlencoded']);
    expect(res.status).toBe(403);
    expect(lab.requestsFor('/public/form').every((s) => !s.complete)).toBe(true);
  });

  test('a clean gzip upload reaches the origin byte for byte', async () => {
    const file = path.join(dir, 'clean.gz');
    const compressed = zlib.gzipSync(Buffer.from('nothing secret here\n'.repeat(5000)));
    writeFileSync(file, compressed);
    const res = await upload(file, '/public/clean', ['Content-Encoding: gzip', 'Content-Type: application/octet-stream']);
    expect(res.status).toBe(200);
    const seen = lab.requestsFor('/public/clean');
    expect(seen).toHaveLength(1);
    expect(Buffer.from(seen[0]!.body, 'latin1').equals(compressed)).toBe(true);
  });

  test('a coding DLP cannot decode is refused under a deny rule, saying why', async () => {
    const file = path.join(dir, 'opaque.bin');
    writeFileSync(file, Buffer.from('whatever this is'));
    const res = await upload(file, '/public/zstd', ['Content-Encoding: zstd', 'Content-Type: application/octet-stream']);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/DLP cannot inspect it/);
    expect(lab.requestsFor('/public/zstd').every((s) => !s.complete)).toBe(true);
    expect((await record('/public/zstd'))?.error).toMatch(/^TG_ERR_DLP_BLOCKED: upload refused: DLP cannot inspect it: the upload's Content-Encoding "zstd" cannot be decoded/);
  });
});
