import { type ChildProcess, spawn } from 'node:child_process';
import WebSocket from 'ws';
import { tempDir } from '../../integration/support/pki';
import { cleanEnv } from '../../integration/support/run';

const CHROMIUM = '/usr/bin/chromium';

/**
 * Headless Chromium driven over the Chrome DevTools Protocol (the protocol Puppeteer and
 * Playwright speak), with the `ws` client: one page, evaluate script in it, take screenshots.
 * Every wait is bounded.
 */
export class Browser {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();

  private constructor(
    private readonly process: ChildProcess,
    private readonly socket: WebSocket,
    private readonly sessionId: string,
    readonly stderr: () => string,
  ) {}

  static async launch(options: { width?: number; height?: number; timeoutMs?: number } = {}): Promise<Browser> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const home = tempDir('cdp-home');
    const child = spawn(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-proxy-server',
        `--window-size=${options.width ?? 1400},${options.height ?? 900}`,
        `--user-data-dir=${tempDir('cdp-profile')}`,
        '--remote-debugging-port=0',
        'about:blank',
      ],
      { env: cleanEnv({ HOME: home }), stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    let stderr = '';
    const endpoint = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`chromium gave no DevTools endpoint within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`chromium could not start (${err.message}); run ./scripts/install-test-deps`));
      });
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-8000);
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
    });
    const socket = new WebSocket(endpoint, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const browser = new Browser(child, socket, '', () => stderr);
    socket.on('message', (data: WebSocket.RawData) => browser.onMessage(data.toString()));
    const { targetInfos } = (await browser.call('Target.getTargets')) as { targetInfos: { targetId: string; type: string }[] };
    const page = targetInfos.find((t) => t.type === 'page');
    const targetId = page ? page.targetId : ((await browser.call('Target.createTarget', { url: 'about:blank' })) as { targetId: string }).targetId;
    const { sessionId } = (await browser.call('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    const attached = new Browser(child, socket, sessionId, () => stderr);
    socket.removeAllListeners('message');
    socket.on('message', (data: WebSocket.RawData) => attached.onMessage(data.toString()));
    await attached.send('Page.enable');
    await attached.send('Runtime.enable');
    // The viewport exactly as asked (the window also holds browser chrome, even headless).
    await attached.send('Emulation.setDeviceMetricsOverride', { width: options.width ?? 1400, height: options.height ?? 900, deviceScaleFactor: 1, mobile: false });
    return attached;
  }

  private onMessage(text: string): void {
    const message = JSON.parse(text) as { id?: number; result?: unknown; error?: { message: string } };
    if (message.id === undefined) return;
    const waiter = this.pending.get(message.id);
    if (!waiter) return;
    this.pending.delete(message.id);
    if (message.error) waiter.reject(new Error(message.error.message));
    else waiter.resolve(message.result);
  }

  private call(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<unknown> {
    const id = this.nextId++;
    this.socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`CDP ${method} timed out`));
      }, 30_000);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  /** A command to the page. */
  send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    return this.call(method, params, this.sessionId);
  }

  /** Loads `url` and waits for its load event. */
  async goto(url: string): Promise<void> {
    await this.send('Page.navigate', { url });
    await this.waitFor('document.readyState === "complete"', 30_000);
  }

  /** Evaluates an expression in the page (awaiting a promise), returning its JSON value. */
  async evaluate<T>(expression: string): Promise<T> {
    const result = (await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true })) as {
      result: { value?: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    };
    if (result.exceptionDetails) throw new Error(`page script failed: ${result.exceptionDetails.exception?.description ?? result.exceptionDetails.text}`);
    return result.result.value as T;
  }

  /** Polls `expression` in the page until it is truthy; returns its last value. */
  async waitFor<T>(expression: string, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await this.evaluate<T>(expression).catch(() => undefined);
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${expression}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A PNG of the viewport. */
  async screenshot(): Promise<Buffer> {
    const { data } = (await this.send('Page.captureScreenshot', { format: 'png' })) as { data: string };
    return Buffer.from(data, 'base64');
  }

  async close(): Promise<void> {
    this.socket.close();
    // Chromium's helpers are in its process group (detached above); end exactly that group.
    try {
      process.kill(-this.process.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}
