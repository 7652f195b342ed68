/**
 * --max-postcopy-bandwidth (QEMU's max-postcopy-bandwidth): the batch size a paced push uses
 * (what the cap sends in PACED_BATCH_MS, bounded), the knob's checks, and a paced push that takes
 * the time the cap says, in batches of that size, every page once.
 */
import { describe, expect, it } from 'vitest';
import { isMigrationError, silentLogger } from '@livemig/shared';
import { Bitmap, GuestMemory } from '@livemig/shared/vm';
import { resolveMigrateParams } from '@livemig/agent-source';
import { PostcopyPusher, PUSH_BATCH } from '../../../agent-source/src/migration/sections/ram/postcopy-pusher.ts';
import {
  MIN_PACED_BATCH_PAGES,
  PACED_BATCH_MS,
  pacedBatchPages,
} from '../../../agent-source/src/migration/sections/ram/push-pacing.ts';
import { MigrationStats } from '../../../agent-source/src/migration/stats.ts';
import { TokenBucket } from '../../../agent-source/src/migration/token-bucket.ts';
import { recordingChannel } from '../../helpers/recording-channel.ts';

describe('pacedBatchPages', () => {
  it('unpaced: full batches', () => {
    expect(pacedBatchPages(null, 4096, PUSH_BATCH)).toBe(PUSH_BATCH);
  });

  it('what the cap sends in PACED_BATCH_MS, within [MIN_PACED_BATCH_PAGES, the full batch]', () => {
    expect(PACED_BATCH_MS).toBe(2);
    expect(pacedBatchPages(100e6, 4096, PUSH_BATCH)).toBe(48); // 200 kB in 2 ms
    expect(pacedBatchPages(1e6, 4096, PUSH_BATCH)).toBe(MIN_PACED_BATCH_PAGES);
    expect(pacedBatchPages(10e9, 4096, PUSH_BATCH)).toBe(PUSH_BATCH);
  });
});

describe('resolveMigrateParams: max-postcopy-bandwidth', () => {
  it('absent: null (the push runs under max-bandwidth alone)', () => {
    expect(resolveMigrateParams('postcopy').maxPostcopyBandwidthBps).toBeNull();
  });

  it('taken for post-copy, hybrid and auto', () => {
    for (const mode of ['postcopy', 'hybrid', 'auto']) {
      expect(resolveMigrateParams(mode, { maxPostcopyBandwidthBps: 1e8 }).maxPostcopyBandwidthBps).toBe(1e8);
    }
  });

  it.each([
    ['postcopy', 0, /max-postcopy-bandwidth must be > 0/],
    ['postcopy', -5, /max-postcopy-bandwidth must be > 0/],
    ['postcopy', Number.NaN, /max-postcopy-bandwidth must be > 0/],
    ['precopy', 1e8, /applies to --mode postcopy, hybrid or auto/],
  ])('%s with %s: ERR_INVALID_ARGUMENT', (mode, rate, message) => {
    let caught: unknown;
    try {
      resolveMigrateParams(mode, { maxPostcopyBandwidthBps: rate });
    } catch (error) {
      caught = error;
    }
    expect(isMigrationError(caught) && caught.code).toBe('ERR_INVALID_ARGUMENT');
    expect((caught as Error).message).toMatch(message);
  });
});

describe('a paced push', () => {
  it('goes in paced batches, takes the time the cap says, every page once', async () => {
    const pageCount = 1024; // 4 MiB
    const rate = 20e6; // 20 MB/s: 40 kB per 2 ms, 9 pages per batch; 4 MiB in ~210 ms
    const batchPages = pacedBatchPages(rate, 4096, PUSH_BATCH);
    expect(batchPages).toBe(9);
    const absent = new Bitmap(pageCount);
    absent.setAll();
    const pusher = new PostcopyPusher(
      {
        memory: GuestMemory.allocate(pageCount * 4096),
        stats: new MigrationStats(),
        bucket: new TokenBucket({ rateBps: rate, burstBytes: batchPages * 4096 }),
        batchPages,
        logger: silentLogger(),
        onPageSent: () => {},
        sentBefore: () => false,
        signal: new AbortController().signal,
      },
      absent,
      0,
    );
    const { channel, batches } = recordingChannel();
    const started = performance.now();
    await pusher.pushAll(channel);
    const ms = performance.now() - started;
    expect(Math.max(...batches.map((b) => b.length))).toBe(batchPages);
    const all = batches.flat();
    expect(new Set(all).size).toBe(pageCount);
    expect(all).toHaveLength(pageCount);
    // The bucket starts full (one batch): the rest goes at the cap, never faster.
    const atCapMs = (((pageCount - batchPages) * 4096) / rate) * 1000;
    expect(ms).toBeGreaterThanOrEqual(atCapMs * 0.95);
  });
});
