import { stageOf, summarise } from './profile';

describe('bench profile stages', () => {
  test('frames are charged to tollgate folders, undici, dependencies, Node layers and native calls', () => {
    expect(stageOf('forward', 'file:///srv/tollgate/dist/src/http/forward.js')).toBe('tollgate: http');
    expect(stageOf('onHeaders', 'file:///srv/tollgate/node_modules/undici/lib/dispatcher/client-h1.js')).toBe('undici');
    expect(stageOf('write', 'file:///srv/tollgate/node_modules/@scope/pkg/index.js')).toBe('dependency: @scope/pkg');
    expect(stageOf('Readable.push', 'node:internal/streams/readable')).toBe('node: streams');
    expect(stageOf('writev', '')).toBe('native: socket writes');
    expect(stageOf('(garbage collector)', '')).toBe('GC');
    expect(stageOf('(idle)', '')).toBeNull();
  });

  test('idle and skipped start-up samples are not busy time', () => {
    const profile = {
      nodes: [
        { id: 1, callFrame: { functionName: '(root)', url: '' }, children: [2, 3, 4] },
        { id: 2, callFrame: { functionName: '(idle)', url: '' } },
        { id: 3, callFrame: { functionName: 'decide', url: 'file:///x/dist/src/policy/decide.js' } },
        { id: 4, callFrame: { functionName: 'writev', url: '' } },
      ],
      samples: [3, 2, 3, 4, 4],
      timeDeltas: [1000, 5000, 1000, 1000, 2000],
    };
    expect(summarise(profile)).toEqual({
      busyMs: 5,
      stages: [
        ['native: socket writes', 3],
        ['tollgate: policy', 2],
      ],
    });
    expect(summarise(profile, 3).busyMs).toBe(4);
  });
});
