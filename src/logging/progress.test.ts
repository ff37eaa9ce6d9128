import { Writable } from 'node:stream';
import pino from 'pino';
import { withProgress } from './progress';

function capture(): { logger: pino.Logger; messages: () => string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), messages: () => lines.map((l) => String((JSON.parse(l) as { msg: string }).msg)) };
}

const delay = <T>(ms: number, value: T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(value), ms));

describe('withProgress', () => {
  test('slow work gets a progress line, then a done line', async () => {
    const { logger, messages } = capture();
    expect(await withProgress(logger, 'generating the CA', delay(120, 'ca'), 40)).toBe('ca');
    expect(messages()).toEqual(['generating the CA…', 'generating the CA: done']);
  });

  test('fast work prints nothing', async () => {
    const { logger, messages } = capture();
    await withProgress(logger, 'loading', delay(5, null), 200);
    await delay(250, null);
    expect(messages()).toEqual([]);
  });

  test('a failure still clears the timer and propagates', async () => {
    const { logger, messages } = capture();
    await expect(withProgress(logger, 'x', Promise.reject(new Error('boom')), 50)).rejects.toThrow('boom');
    await delay(80, null);
    expect(messages()).toEqual([]);
  });
});
