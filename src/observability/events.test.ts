import diagnosticsChannel from 'node:diagnostics_channel';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { publish, subscribe } from './events';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Lets pending finalisers (FinalizationRegistry callbacks) run. */
async function afterFinalisers(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('gateway events', () => {
  test('a subscriber receives what is published, and nothing after unsubscribing', () => {
    const seen: string[] = [];
    const unsubscribe = subscribe('tollgate:socks:bind', (m) => seen.push(m.result));
    publish('tollgate:socks:bind', { result: 'connected' });
    unsubscribe();
    publish('tollgate:socks:bind', { result: 'timeout' });
    expect(seen).toEqual(['connected']);
  });

  test('messages still arrive when an earlier channel of the same name was garbage-collected', async () => {
    // An earlier holder of the channel (in tests: another module instance) lets it go.
    (() => {
      diagnosticsChannel.channel('tollgate:auth:failed');
    })();
    await afterFinalisers(); // a later task: the channel is no longer kept alive for this job
    gc();
    // Subscribe before the collected channel's finaliser has run, then let it run.
    const seen: string[] = [];
    const unsubscribe = subscribe('tollgate:auth:failed', (m) => seen.push(m.reason));
    await afterFinalisers();
    gc();
    await afterFinalisers();
    publish('tollgate:auth:failed', { frontend: 'socks', reason: 'bad-password' });
    unsubscribe();
    expect(seen).toEqual(['bad-password']);
  });
});
