import http from 'node:http';
import { eventually, startTestGateway, type TestGateway } from './support/gateway';
import { startHttpOrigin, type Origin } from './support/origins';
import { curl } from './support/run';

/**
 * The flow view's data, as curl and a raw event-stream client see it: recent records without
 * headers or bodies and redacted as in the audit, filters, one flow's records, live events, and
 * the address allow-list. The page itself is driven in Chromium (test/browser/flow-view.test.ts).
 */
const POLICY =
  'rules:\n  - name: web\n    match: origin.test\n    action: inspect\n    http:\n      - name: no-admin\n        request: { path: "/admin/**" }\n        action: deny\n  - name: no-paste\n    match: denied.test\n    action: deny\n';

interface Entry {
  readonly type: string;
  readonly seq: number;
  readonly flow_id: string;
  readonly path?: string;
  readonly action: string;
  readonly status?: number;
  readonly [key: string]: unknown;
}

describe('the flow view', () => {
  let origin: Origin;
  let gw: TestGateway;
  let admin: string;

  beforeAll(async () => {
    origin = await startHttpOrigin('flows');
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  admin: 127.0.0.1:0',
      allowedPorts: { tunnel: [443], http: [origin.port] },
      policies: { 'p.yaml': POLICY },
      extraConfig: 'flow_view:\n  records: 50',
    });
    admin = `http://127.0.0.1:${gw.gateway.address('admin')!.port}`;
  });

  afterAll(async () => {
    await gw?.stop();
    await origin?.close();
  });

  const records = async (filter = ''): Promise<Entry[]> => {
    const res = await curl([`${admin}/flows/records?filter=${encodeURIComponent(filter)}`]);
    expect(res.status).toBe(200);
    return (JSON.parse(res.body) as { records: Entry[] }).records;
  };

  test('recent records, newest first: no header maps, redacted as in the audit', async () => {
    expect((await curl(['-x', gw.proxy, '-H', 'Authorization: Bearer s3cret', `http://origin.test:${origin.port}/hello?token=abc123&x=1`])).status).toBe(200);
    expect((await curl(['-x', gw.proxy, `http://origin.test:${origin.port}/admin/panel`])).status).toBe(403);
    const list = await eventually(records, (r) => r.some((e) => e.path?.includes('/admin/panel') === true));
    const hello = list.find((e) => e.path?.includes('/hello'))!;
    expect(hello.path).toBe('/hello?token=[REDACTED]&x=1');
    expect(hello).not.toHaveProperty('request_headers');
    expect(hello).not.toHaveProperty('response_headers');
    expect(hello.content_type).toBe('text/plain');
    expect(JSON.stringify(list)).not.toMatch(/s3cret|abc123/);
    const denied = list.find((e) => e.path?.includes('/admin/panel'))!;
    expect(denied).toMatchObject({ action: 'deny', http_rule: 'no-admin', status: 403 });
    expect(list.indexOf(denied)).toBeLessThan(list.indexOf(hello));
  });

  test('filters are the tail language; a bad one is a 400 naming the term', async () => {
    expect((await records('action=deny type=request')).every((e) => e.action === 'deny' && e.type === 'request')).toBe(true);
    expect((await records('status>=400')).map((e) => e.status)).toEqual(expect.arrayContaining([403]));
    expect((await records('status>=400')).every((e) => (e.status ?? 0) >= 400)).toBe(true);
    const bad = await curl([`${admin}/flows/records?filter=${encodeURIComponent('colour=red')}`]);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toEqual({ error: expect.stringMatching(/unknown field colour/) });
  });

  test("one flow's records: its requests and, once closed, its connection record", async () => {
    const list = await records('type=request');
    const flowId = list[0]!.flow_id;
    const res = await curl([`${admin}/flows/flow/${flowId}`]);
    const flow = JSON.parse(res.body) as { records: Entry[] };
    expect(flow.records.length).toBeGreaterThanOrEqual(1);
    expect(flow.records.every((e) => e.flow_id === flowId)).toBe(true);
  });

  test('/flows/events streams new records that pass the filter', async () => {
    const received: Entry[] = [];
    let raw = '';
    const req = http.get(`${admin}/flows/events?filter=${encodeURIComponent('type=request path=*live*')}`);
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
    });
    expect(response.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      raw += chunk;
      for (const block of raw.split('\n\n').slice(0, -1)) {
        const data = /^data: (.*)$/m.exec(block);
        if (data) received.push(JSON.parse(data[1]!) as Entry);
      }
      raw = raw.slice(raw.lastIndexOf('\n\n') + 2);
    });
    try {
      await curl(['-x', gw.proxy, `http://origin.test:${origin.port}/hello?live=1`]);
      await curl(['-x', gw.proxy, `http://origin.test:${origin.port}/hello?other=1`]);
      await curl(['-x', gw.proxy, `http://origin.test:${origin.port}/hello?live=2`]);
      const got = await eventually(
        () => received.map((e) => e.path),
        (paths) => paths.length >= 2,
      );
      expect(got).toEqual(['/hello?live=1', '/hello?live=2']);
    } finally {
      req.destroy();
    }
  });

  test('the ring keeps flow_view.records entries', async () => {
    for (let i = 0; i < 30; i++) await curl(['-x', gw.proxy, `http://origin.test:${origin.port}/hello?fill=${i}`]);
    const all = await eventually(records, (r) => r.some((e) => e.path?.endsWith('fill=29') === true));
    expect(all).toHaveLength(50);
  });
});

describe('the flow view is only for flow_view.allow', () => {
  let gw: TestGateway;

  afterAll(async () => {
    await gw?.stop();
  });

  test('a client outside the allowed blocks gets 403 on every /flows path; other admin pages are unaffected', async () => {
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  admin: 127.0.0.1:0',
      policies: { 'p.yaml': 'rules: []\n' },
      extraConfig: 'flow_view:\n  allow: [10.0.0.0/8, "fd00::/8"]',
    });
    const admin = `http://127.0.0.1:${gw.gateway.address('admin')!.port}`;
    for (const path of ['/flows', '/flows.js', '/flows/records', '/flows/events', '/flows/flow/abc']) {
      const res = await curl([`${admin}${path}`]);
      expect({ path, status: res.status }).toEqual({ path, status: 403 });
    }
    expect((await curl([`${admin}/metrics`])).status).toBe(200);
    expect(gw.logs().some((l) => l.msg === 'flow view refused: client not in flow_view.allow')).toBe(true);
  });

  test('flow_view.enabled: false removes it', async () => {
    const off = await startTestGateway({ listenSection: 'listen:\n  admin: 127.0.0.1:0', policies: { 'p.yaml': 'rules: []\n' }, extraConfig: 'flow_view:\n  enabled: false' });
    try {
      expect((await curl([`http://127.0.0.1:${off.gateway.address('admin')!.port}/flows`])).status).toBe(404);
    } finally {
      await off.stop();
    }
  });
});
