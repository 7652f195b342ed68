/**
 * A technique with engine options as one name (shared/src/predict/options.ts): what each option
 * means, the defaults of bare options, refusals with ERR_INVALID_ARGUMENT saying what is wrong,
 * and formatTechnique writing back a name that reads as the same spec.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  AUTO_CONVERGE_DEFAULTS,
  formatTechnique,
  parseTechnique,
  type TechniqueSpec,
} from '../../../../shared/src/predict/index.ts';

const MiB = 1024 * 1024;

describe('parseTechnique', () => {
  it.each<[string, TechniqueSpec]>([
    ['precopy', { base: 'precopy', options: {} }],
    ['precopy+compress', { base: 'precopy', options: { compress: 'lz4' } }],
    [
      'precopy+compress=brotli+compress-threads=2',
      { base: 'precopy', options: { compress: 'brotli', compressThreads: 2 } },
    ],
    ['precopy+compress=auto', { base: 'precopy', options: { compress: 'auto' } }],
    ['precopy+xbzrle', { base: 'precopy', options: { xbzrle: 'on' } }],
    [
      'precopy+xbzrle=auto+xbzrle-cache=16MiB',
      { base: 'precopy', options: { xbzrle: 'auto', xbzrleCacheBytes: 16 * MiB } },
    ],
    ['hybrid+dedup', { base: 'hybrid', options: { dedup: 'on' } }],
    [
      'precopy+auto-converge',
      { base: 'precopy', options: { throttle: { kind: 'auto-converge', ...AUTO_CONVERGE_DEFAULTS } } },
    ],
    [
      'precopy+auto-converge=30/20/90',
      {
        base: 'precopy',
        options: {
          throttle: {
            kind: 'auto-converge',
            initialPercent: 30,
            incrementPercent: 20,
            maxPercent: 90,
            triggerThresholdPercent: 50,
          },
        },
      },
    ],
    [
      'precopy+auto-converge=40',
      {
        base: 'precopy',
        options: { throttle: { kind: 'auto-converge', ...AUTO_CONVERGE_DEFAULTS, initialPercent: 40 } },
      },
    ],
    [
      'precopy+dirty-limit=20MB/s',
      { base: 'precopy', options: { throttle: { kind: 'dirty-limit', limitBps: 20e6, maxPercent: 99 } } },
    ],
    [
      'hybrid+compress+dirty-limit=1gbit',
      {
        base: 'hybrid',
        options: { compress: 'lz4', throttle: { kind: 'dirty-limit', limitBps: 125e6, maxPercent: 99 } },
      },
    ],
  ])('reads %s', (name, spec) => {
    expect(parseTechnique(name)).toStrictEqual(spec);
    expect(parseTechnique(formatTechnique(spec))).toStrictEqual(spec);
  });

  it.each<[string, RegExp]>([
    ['warp', /"warp" is not a technique/],
    ['precopy+zstd', /unknown option "zstd"/],
    ['precopy+compress=zstd', /compress: "zstd" is not one of lz4, brotli, auto, off/],
    ['precopy+compress+compress=brotli', /option "compress" given twice/],
    ['precopy+auto-converge+dirty-limit=20MB/s', /two ways to throttle/],
    ['precopy+dirty-limit', /dirty-limit needs a rate with its unit/],
    ['precopy+dirty-limit=20', /dirty-limit needs a rate with its unit/],
    ['precopy+dirty-limit=fast/s', /dirty-limit: cannot parse rate/],
    ['precopy+dirty-limit=0MB/s', /must be more than 0/],
    ['precopy+auto-converge=0/10/99', /auto-converge initial: "0" is not a whole percent/],
    ['precopy+auto-converge=20/10/99/5', /give INITIAL\/INCREMENT\/MAX/],
    ['precopy+compress-threads=2', /compress-threads needs compress/],
    ['precopy+compress+compress-threads=17', /compress-threads: "17" is not a whole number from 1 to 16/],
    ['precopy+xbzrle-cache=8MiB', /xbzrle-cache needs xbzrle/],
    ['precopy+xbzrle=on+xbzrle-cache=lots', /xbzrle-cache: cannot parse size/],
    ['precopy+compress=', /needs a value/],
    ['postcopy+compress', /a pure post-copy takes no options/],
    ['postcopy+auto-converge', /a pure post-copy takes no options/],
  ])('refuses %s', (name, message) => {
    let error: unknown;
    try {
      parseTechnique(name);
    } catch (caught) {
      error = caught;
    }
    expect((error as { code?: string } | undefined)?.code, String(error)).toBe('ERR_INVALID_ARGUMENT');
    expect((error as Error).message).toMatch(message);
  });

  it('formatTechnique reads back as the same spec, whatever the options (fast-check)', () => {
    const spec = fc.record({
      base: fc.constantFrom('precopy' as const, 'hybrid' as const),
      options: fc.record(
        {
          compress: fc.constantFrom('lz4' as const, 'brotli' as const, 'auto' as const, 'off' as const),
          xbzrle: fc.constantFrom('on' as const, 'off' as const, 'auto' as const),
          dedup: fc.constantFrom('on' as const, 'off' as const, 'auto' as const),
          throttle: fc.oneof(
            fc.record({
              kind: fc.constant('auto-converge' as const),
              initialPercent: fc.integer({ min: 1, max: 99 }),
              incrementPercent: fc.integer({ min: 1, max: 99 }),
              maxPercent: fc.integer({ min: 1, max: 99 }),
              triggerThresholdPercent: fc.constant(50),
            }),
            fc.record({
              kind: fc.constant('dirty-limit' as const),
              limitBps: fc.integer({ min: 1, max: 1e12 }),
              maxPercent: fc.constant(99),
            }),
          ),
        },
        { requiredKeys: [] },
      ),
    });
    fc.assert(
      fc.property(spec, (s) => {
        // toEqual: fast-check's records have no prototype, parseTechnique's plain objects do.
        expect(parseTechnique(formatTechnique(s))).toEqual(s);
      }),
    );
  });
});
