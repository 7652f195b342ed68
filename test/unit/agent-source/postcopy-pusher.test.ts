/**
 * The post-copy push order: the guest's last-written pages first, then page order from the
 * latest fault; every absent page exactly once, whatever the mix of pushes and requests.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '@livemig/shared';
import { Bitmap, GuestMemory } from '@livemig/shared/vm';
import { PostcopyPusher } from '../../../agent-source/src/migration/sections/ram/postcopy-pusher.ts';
import { MigrationStats } from '../../../agent-source/src/migration/stats.ts';
import { TokenBucket } from '../../../agent-source/src/migration/token-bucket.ts';
import { recordingChannel } from '../../helpers/recording-channel.ts';

function pusher(pageCount: number, first: number[]): PostcopyPusher {
  const memory = GuestMemory.allocate(pageCount * 4096);
  const absent = new Bitmap(pageCount);
  absent.setAll();
  return new PostcopyPusher(
    {
      memory,
      stats: new MigrationStats(),
      bucket: new TokenBucket({}),
      logger: silentLogger(),
      onPageSent: () => {},
      sentBefore: () => false,
      signal: new AbortController().signal,
    },
    absent,
    0,
    Uint32Array.from(first),
  );
}

describe('PostcopyPusher', () => {
  it('pushes the pages the guest wrote last first, then the rest in page order, each once', async () => {
    const { channel, batches } = recordingChannel();
    await pusher(1024, [5, 100, 700]).pushAll(channel);
    expect(batches[0]).toEqual([5, 100, 700]);
    const all = batches.flat();
    expect(all).toHaveLength(1024);
    expect(new Set(all).size).toBe(1024);
    expect(batches[1]!.slice(0, 6)).toEqual([0, 1, 2, 3, 4, 6]);
  });

  it('a page a request already sent is not pushed again, first or not', async () => {
    const { channel, batches } = recordingChannel();
    const p = pusher(512, [10, 20]);
    const fault = recordingChannel();
    p.answer({ id: 1, pages: Uint32Array.from([20]) }, fault.channel);
    await p.pushAll(channel);
    expect(fault.batches).toEqual([[20]]);
    expect(batches[0]).toEqual([10]);
    // The scan resumes after the requested page (pre-paging), and wraps around.
    expect(batches[1]!.slice(0, 3)).toEqual([21, 22, 23]);
    const all = [...batches.flat(), ...fault.batches.flat()];
    expect(new Set(all).size).toBe(512);
    expect(all).toHaveLength(512);
  });

  it('a page pushed already and still asked for: answered again with fault-thread (installed once there), never without', async () => {
    for (const capabilities of [['fault-thread'], []]) {
      const { channel, batches } = recordingChannel();
      const p = pusher(512, [10, 20]);
      await p.pushAll(channel);
      expect(batches.flat()).toHaveLength(512);
      const fault = recordingChannel(capabilities);
      p.answer({ id: 1, pages: Uint32Array.from([20, 30]) }, fault.channel);
      const again = capabilities.length > 0;
      expect(fault.batches).toEqual(again ? [[20, 30]] : []);
      expect(p.answeredAgain).toBe(again ? 2 : 0);
      expect(p.fetchedOnDemand).toBe(0);
    }
  });
});
