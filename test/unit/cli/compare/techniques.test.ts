/**
 * What a matrix technique name asks for (cli/compare/techniques.ts): the engine's mode, auto's
 * objective, and the migrate params the options become — the same fields `livemig migrate`'s
 * flags give (options.ts migrateParams), so a compare cell runs what the command line would.
 */
import { describe, expect, it } from 'vitest';
import { migrateParams, type MigrateFlags } from '../../../../cli/options.ts';
import { hasOptions, optionParams, PLAIN_TECHNIQUE_NAMES, techniqueCase } from '../../../../cli/compare/techniques.ts';

const BASE_FLAGS: MigrateFlags = { downtimeLimit: 300, maxRounds: 30 };
/** The params `livemig migrate` sends for these flags, without the ones every migration has. */
function fromFlags(flags: Partial<MigrateFlags>): Record<string, unknown> {
  const {
    downtimeLimitMs: _d,
    maxRounds: _m,
    maxBandwidthBps: _b,
    postcopyAfterRounds: _p,
    ...rest
  } = migrateParams({
    ...BASE_FLAGS,
    ...flags,
  });
  return rest;
}

describe('techniqueCase', () => {
  it('plain names: the mode, no options; auto: its objective', () => {
    for (const name of PLAIN_TECHNIQUE_NAMES) expect(hasOptions(name), name).toBe(false);
    expect(techniqueCase('hybrid')).toEqual({ mode: 'hybrid', objective: null, options: {} });
    expect(techniqueCase('auto:bytes')).toEqual({ mode: 'auto', objective: 'bytes', options: {} });
    expect(hasOptions('precopy')).toBe(false);
    expect(hasOptions('auto:downtime')).toBe(false);
    expect(hasOptions('precopy+xbzrle')).toBe(true);
  });

  it('refuses an unknown objective with a code', () => {
    expect(() => techniqueCase('auto:fastest')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });
});

describe('optionParams: the same params as the flags', () => {
  it.each<[string, Partial<MigrateFlags>]>([
    ['precopy+compress', { compress: 'lz4' }],
    ['precopy+compress=brotli+compress-threads=2', { compress: 'brotli', compressThreads: 2 }],
    ['precopy+xbzrle+xbzrle-cache=16MiB', { xbzrle: 'on', xbzrleCache: 16 * 1024 * 1024 }],
    ['precopy+dedup=auto', { dedup: 'auto' }],
    [
      'precopy+auto-converge',
      {
        autoConverge: true,
        cpuThrottleInitial: 20,
        cpuThrottleIncrement: 10,
        maxCpuThrottle: 99,
        throttleTriggerThreshold: 50,
      },
    ],
    [
      'precopy+auto-converge=30/20/90',
      {
        autoConverge: true,
        cpuThrottleInitial: 30,
        cpuThrottleIncrement: 20,
        maxCpuThrottle: 90,
        throttleTriggerThreshold: 50,
      },
    ],
    ['precopy+dirty-limit=20MB/s', { dirtyLimit: 20e6, maxCpuThrottle: 99 }],
  ])('%s', (name, flags) => {
    const { mode, options } = techniqueCase(name);
    expect(mode).toBe('precopy');
    expect(optionParams(options)).toStrictEqual(fromFlags(flags));
  });

  it('none for a plain technique: the engine defaults', () => {
    expect(optionParams(techniqueCase('precopy').options)).toStrictEqual({});
  });
});
