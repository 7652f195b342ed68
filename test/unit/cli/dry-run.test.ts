/**
 * `livemig migrate --dry-run` with encoding and throttle flags (cli/dry-run.ts): the flags become
 * the model's options (QEMU's auto-converge knobs by default, --max-cpu-throttle for either
 * throttle), and the printout adds each technique predicted with them, the guest's predicted
 * speed, and where the pages' figures came from (the priors: a dry run cannot see the pages).
 */
import { describe, expect, it } from 'vitest';
import {
  choose,
  DEFAULT_PAGE_FIGURES,
  OBJECTIVES,
  predictAll,
  type ModelInputs,
  type TechniqueOptions,
} from '@livemig/shared/predict';
import type { DirtyRateMeasurement } from '@livemig/shared/vm';
import { formatDryRun, optionsFromFlags, type DryRun } from '../../../cli/dry-run.ts';

const MiB = 1024 * 1024;
const FLAGS = { downtimeLimit: 300, maxRounds: 30 };

describe('optionsFromFlags', () => {
  it('none given: no options (the plain predictions only)', () => {
    expect(optionsFromFlags(FLAGS)).toStrictEqual({});
  });

  it('the encodings as given; auto-converge with QEMU’s defaults for knobs not given', () => {
    expect(
      optionsFromFlags({
        ...FLAGS,
        compress: 'lz4',
        compressThreads: 2,
        xbzrle: 'on',
        xbzrleCache: 8 * MiB,
        dedup: 'auto',
      }),
    ).toStrictEqual({ compress: 'lz4', compressThreads: 2, xbzrle: 'on', xbzrleCacheBytes: 8 * MiB, dedup: 'auto' });
    expect(optionsFromFlags({ ...FLAGS, autoConverge: true, cpuThrottleInitial: 40 })).toStrictEqual({
      throttle: {
        kind: 'auto-converge',
        initialPercent: 40,
        incrementPercent: 10,
        maxPercent: 99,
        triggerThresholdPercent: 50,
      },
    });
    expect(optionsFromFlags({ ...FLAGS, dirtyLimit: 20e6, maxCpuThrottle: 90 })).toStrictEqual({
      throttle: { kind: 'dirty-limit', limitBps: 20e6, maxPercent: 90 },
    });
  });
});

describe('formatDryRun with options', () => {
  const dirtyRate = {
    memoryBytes: 256 * MiB,
    dirtyRateMBps: 380,
    standardErrorMBps: 5,
    windowMs: 1000,
    pagesChanged: 900,
    pagesSampled: 4096,
  } as DirtyRateMeasurement;
  const inputs: ModelInputs = {
    memoryBytes: 256 * MiB,
    pageSize: 4096,
    dirty: { rateBps: 400e6, wssBytes: 64 * MiB },
    link: { bandwidthBps: 125e6, rttMs: 0.2, source: '--link-bandwidth' },
    downtimeLimitMs: 300,
    maxRounds: 30,
    postcopyAfterRounds: null,
  };
  function run(options: TechniqueOptions): DryRun {
    const predictions = predictAll(inputs);
    const withOptions = { options, pages: DEFAULT_PAGE_FIGURES, predictions: predictAll({ ...inputs, options }) };
    return {
      vm: 'vm1',
      dirtyRate,
      inputs,
      predictions,
      withOptions,
      choices: OBJECTIVES.map((o) => choose(withOptions.predictions, o)),
    };
  }

  it('--auto-converge: a second table with the guest’s speed, the throttle’s peak, auto choosing among them', () => {
    const text = formatDryRun(run(optionsFromFlags({ ...FLAGS, autoConverge: true })));
    expect(text).toContain('With auto-converge 20/10/99 % (precopy+auto-converge):');
    expect(text).toMatch(/Throttle: +peak \d+ % over \d+ rounds; the guest at \d+ % of its speed during pre-copy/);
    expect(text).toMatch(/guest speed/);
    expect(text).toContain('--mode auto would choose (with these options):');
    expect(text).toMatch(/precopy\+auto-converge \d+ ms down/);
  });

  it('--compress lz4: the priors are named as the source, and the codec in use on this link', () => {
    const text = formatDryRun(run(optionsFromFlags({ ...FLAGS, compress: 'lz4' })));
    expect(text).toContain('With compress lz4 (precopy+compress):');
    expect(text).toContain(`Pages:           ${DEFAULT_PAGE_FIGURES.source}`);
    expect(text).toMatch(/Compression: +lz4 on this link \(pages at 250/);
  });

  it('without options: one table, no "With"', () => {
    const plain = { ...run({}), withOptions: undefined };
    const text = formatDryRun(plain);
    expect(text).not.toContain('With ');
    expect(text).toContain('--mode auto would choose:');
  });
});
