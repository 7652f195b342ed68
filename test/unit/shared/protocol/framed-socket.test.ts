import { describe, expect, it } from 'vitest';
import { resolveFramedSocketOptions } from '../../../../shared/src/protocol/index.ts';
import { codeOf } from './helpers.ts';

describe('FramedSocket options', () => {
  it('resolves documented defaults once', () => {
    const o = resolveFramedSocketOptions();
    expect(o).toMatchObject({
      maxFrameBytes: 16 * 1024 * 1024,
      writeHighWaterMark: 4 * 1024 * 1024,
      maxWriteBufferBytes: 64 * 1024 * 1024,
      heartbeatIntervalMs: 1000,
      idleTimeoutMs: 10_000,
      pageSize: 4096,
      role: 'any',
    });
    expect(Object.isFrozen(o)).toBe(true);
  });

  it('ERR_INVALID_ARGUMENT for each invalid or contradictory setting', () => {
    const bad = [
      { maxFrameBytes: 0 },
      { maxFrameBytes: 2 ** 33 },
      { writeHighWaterMark: 0 },
      { writeHighWaterMark: 1024, maxFrameBytes: 1024 * 1024, maxWriteBufferBytes: 1024 * 1024 },
      { readBufferBytes: 10 },
      { heartbeatIntervalMs: -1 },
      { idleTimeoutMs: 1.5 },
      { heartbeatIntervalMs: 1000, idleTimeoutMs: 500 },
      { pageSize: 1000 },
      { pageCount: -1 },
      { role: 'sideways' as 'source' },
      { version: 0 },
      { versions: [] },
      { maxMetaBytes: 0 },
    ];
    for (const options of bad) {
      expect(
        codeOf(() => resolveFramedSocketOptions(options)),
        JSON.stringify(options),
      ).toBe('ERR_INVALID_ARGUMENT');
    }
    expect(() => resolveFramedSocketOptions({ heartbeatIntervalMs: 0, idleTimeoutMs: 100 })).not.toThrow();
  });
});
