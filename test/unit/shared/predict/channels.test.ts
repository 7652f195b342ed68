/**
 * Parallel bulk channels in the prediction model (shared/src/predict/channels.ts): where the
 * measured bandwidth is the engine's (loopback), N channels move the rounds' pages CHANNEL_SPEEDUP[N]
 * times as fast and an idle pre-copy's round 0 shrinks by that factor; where it is a link's (a
 * slow link), they change nothing; post-copy never changes. And the technique name carries them:
 * `precopy+channels=N`, 1..MAX_CHANNELS, anything else refused with ERR_INVALID_ARGUMENT.
 */
import { describe, expect, it } from 'vitest';
import { MAX_CHANNELS } from '../../../../shared/src/multifd/index.ts';
import {
  channelsBandwidthBps,
  channelSpeedup,
  formatTechnique,
  ONE_CHANNEL_BPS,
  parseTechnique,
  predict,
  type ModelInputs,
} from '../../../../shared/src/predict/index.ts';

const MiB = 1024 ** 2;
const O = { setupMs: 100, switchoverMs: 20, tailMs: 30 };

function inputs(bandwidthBps: number, channels?: number): ModelInputs {
  return {
    memoryBytes: 512 * MiB,
    pageSize: 4096,
    dirty: { rateBps: 0, wssBytes: null },
    link: { bandwidthBps, rttMs: 0.1, source: 'test' },
    downtimeLimitMs: 300,
    maxRounds: 30,
    postcopyAfterRounds: null,
    overheads: O,
    ...(channels === undefined ? {} : { options: { channels } }),
  };
}

/** An idle pre-copy's rounds' time: its total less the fixed costs and the pause. */
const roundsMs = (input: ModelInputs): number => {
  const p = predict('precopy', input);
  return p.totalMs - O.setupMs - O.tailMs - p.downtimeMs - input.link.rttMs;
};

describe('channels in the model', () => {
  it('speed the rounds up where the engine is the limit, by the measured factor', () => {
    const engine = ONE_CHANNEL_BPS;
    for (const n of [2, 3]) {
      expect(channelsBandwidthBps(engine, n)).toBeCloseTo(engine * channelSpeedup(n));
      expect(roundsMs(inputs(engine, n)) / roundsMs(inputs(engine))).toBeCloseTo(1 / channelSpeedup(n), 6);
    }
    expect(channelsBandwidthBps(engine, 1)).toBe(engine);
  });

  it('change nothing where a slow link is the limit, nor for post-copy', () => {
    const wan = 12.5e6;
    expect(channelsBandwidthBps(wan, 3)).toBe(wan);
    expect(predict('precopy', inputs(wan, 3))).toEqual({
      ...predict('precopy', inputs(wan)),
      options: { channels: 3 },
    });
    expect(predict('postcopy', inputs(ONE_CHANNEL_BPS, 3)).totalMs).toBe(
      predict('postcopy', inputs(ONE_CHANNEL_BPS)).totalMs,
    );
  });
});

describe('the channels option of a technique name', () => {
  it('round-trips', () => {
    const spec = parseTechnique('precopy+channels=3');
    expect(spec).toEqual({ base: 'precopy', options: { channels: 3 } });
    expect(formatTechnique(spec)).toBe('precopy+channels=3');
    expect(parseTechnique('hybrid+compress+channels=2').options).toEqual({ compress: 'lz4', channels: 2 });
  });

  it.each(['precopy+channels', 'precopy+channels=0', `precopy+channels=${MAX_CHANNELS + 1}`, 'precopy+channels=1.5'])(
    'refuses %s with ERR_INVALID_ARGUMENT',
    (name) => {
      expect(() => parseTechnique(name)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    },
  );
});
