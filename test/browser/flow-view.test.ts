import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { eventually, startTestGateway, type TestGateway } from '../integration/support/gateway';
import { startHttpOrigin, type Origin } from '../integration/support/origins';
import { tempDir } from '../integration/support/pki';
import { curl } from '../integration/support/run';
import { Browser } from './support/cdp';

/**
 * /flows in a real browser: headless Chromium opens the page on the admin listener, the table
 * fills from the gateway's recent records, new traffic appears without a reload (server-sent
 * events), the filters narrow it, a click opens the flow's requests in the detail panel, and a
 * screenshot is taken (kept next to the test's temporary files for a person to look at).
 */
const TIMEOUT_MS = 120_000;

const POLICY = `rules:
  - name: web
    match: origin.test
    action: inspect
    http:
      - name: no-admin
        request: { path: "/admin/**" }
        action: deny
  - name: no-paste
    match: denied.test
    action: deny
`;

const rowCount = 'document.querySelectorAll("#rows tr").length';
const rowTexts = 'Array.from(document.querySelectorAll("#rows tr")).map((tr) => tr.textContent)';

describe('the flow view in headless Chromium', () => {
  let origin: Origin;
  let gw: TestGateway;
  let browser: Browser | null = null;
  let admin: string;

  beforeAll(async () => {
    origin = await startHttpOrigin('browser-flows');
    gw = await startTestGateway({
      listenSection: 'listen:\n  explicit: 127.0.0.1:0\n  admin: 127.0.0.1:0',
      allowedPorts: { tunnel: [443, origin.port], http: [origin.port] },
      policies: { 'p.yaml': POLICY },
    });
    admin = `http://127.0.0.1:${gw.gateway.address('admin')!.port}`;
    // Traffic before the page opens: two requests on one client connection, a denial, a denied CONNECT.
    expect((await curl(['-x', gw.proxy, `http://origin.test:${origin.port}/hello?n=1`, `http://origin.test:${origin.port}/hello?n=2`])).status).toBe(200);
    expect((await curl(['-x', gw.proxy, `http://origin.test:${origin.port}/admin/settings`])).status).toBe(403);
    expect((await curl(['-x', gw.proxy, `https://denied.test:${origin.port}/`])).exitCode).not.toBe(0);
    await eventually(gw.audit, (r) => r.filter((x) => x.type === 'connection').length >= 3);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.stop();
    await origin?.close();
  });

  test(
    'shows recent flows, updates live, filters, opens a flow; screenshot',
    async () => {
      browser = await Browser.launch({ width: 1400, height: 900 });
      await browser.goto(`${admin}/flows`);
      expect(await browser.evaluate<string>('document.title')).toBe('tollgate flows');
      // Filled from /flows/records, then live.
      await browser.waitFor(`${rowCount} >= 5 && document.getElementById("live").textContent === "live"`);
      const texts = await browser.evaluate<string[]>(rowTexts);
      expect(texts.some((t) => /\/admin\/settings.*403.*deny.*no-admin/.test(t))).toBe(true);
      expect(texts.some((t) => /CONNECT.*denied\.test.*refused.*deny.*no-paste/.test(t))).toBe(true);
      expect(await browser.evaluate<number>('document.querySelectorAll("#rows tr.deny").length')).toBe(2);

      // New traffic appears without a reload.
      const before = await browser.evaluate<number>(rowCount);
      expect((await curl(['-x', gw.proxy, `http://origin.test:${origin.port}/hello?live=browser`])).status).toBe(200);
      await browser.waitFor(`${rowTexts}.some((t) => t.includes("live=browser"))`);
      expect(await browser.evaluate<number>(rowCount)).toBeGreaterThan(before);

      // Filters: action, then name; the table holds only what matches.
      await browser.evaluate('(() => { const s = document.getElementById("f-action"); s.value = "deny"; s.dispatchEvent(new Event("change")); })()');
      await browser.waitFor(`${rowCount} === 2`);
      expect((await browser.evaluate<string[]>(rowTexts)).every((t) => t.includes('deny'))).toBe(true);
      await browser.evaluate('(() => { const i = document.getElementById("f-name"); i.value = "denied.test"; i.dispatchEvent(new Event("input")); })()');
      await browser.waitFor(`${rowCount} === 1 && document.querySelector("#rows tr").textContent.includes("denied.test")`);
      // A filter the server refuses is shown, not silently ignored.
      await browser.evaluate('(() => { const i = document.getElementById("f-more"); i.value = "colour=red"; i.dispatchEvent(new Event("input")); })()');
      expect(await browser.waitFor<string>('document.getElementById("filter-error").textContent')).toMatch(/unknown field colour/);
      await browser.evaluate(
        '(() => { for (const id of ["f-more", "f-name"]) { const i = document.getElementById(id); i.value = ""; i.dispatchEvent(new Event("input")); } const s = document.getElementById("f-action"); s.value = ""; s.dispatchEvent(new Event("change")); })()',
      );
      await browser.waitFor(`${rowCount} >= 6 && document.getElementById("filter-error").textContent === ""`);

      // The detail panel: the client connection that carried ?n=1 and ?n=2 has both requests.
      await browser.evaluate('Array.from(document.querySelectorAll("#rows tr")).find((tr) => tr.textContent.includes("hello?n=1")).click()');
      await browser.waitFor('!document.getElementById("detail").hidden && document.getElementById("detail-requests")');
      const summary = await browser.evaluate<string>('document.getElementById("detail-summary").textContent');
      expect(summary).toMatch(/2 requests/);
      const detailRows = await browser.evaluate<string[]>('Array.from(document.querySelectorAll("#detail-requests tr")).map((tr) => tr.textContent)');
      expect(detailRows).toEqual([expect.stringContaining('/hello?n=1'), expect.stringContaining('/hello?n=2')]);
      expect(await browser.evaluate<string>('document.getElementById("detail").textContent')).toMatch(/request_id/);
      // Record values are text, never markup: no element came from a record.
      expect(await browser.evaluate<number>('document.querySelectorAll("#rows script, #detail script, #rows img, #detail img").length')).toBe(0);

      const png = await browser.screenshot();
      const file = path.join(tempDir('flows-screenshot'), 'flows.png');
      writeFileSync(file, png);
      expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      // IHDR: width and height of what Chromium rendered.
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1400, 900]);
      // A blank page compresses to almost nothing; a rendered table does not.
      expect(png.length).toBeGreaterThan(20_000);
    },
    TIMEOUT_MS,
  );
});
