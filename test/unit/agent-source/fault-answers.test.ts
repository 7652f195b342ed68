/**
 * The post-copy pages the source's fault worker and the push share (fault-answers.ts): each absent
 * page claimed by exactly one sender; the push skips what the worker answered yet keeps its hash
 * in the digest ledger, goes on from the page the worker was asked for, counts what is left, and
 * resyncs after a reconnect; the worker's counters join the stats once.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '@livemig/shared';
import { Bitmap, GuestMemory } from '@livemig/shared/vm';
import {
  Counter,
  FaultAnswers,
  SENT_BY_FAULT_WORKER,
  SENT_BY_PUSHER,
} from '../../../agent-source/src/migration/sections/ram/fault-answers.ts';
import { PostcopyPusher } from '../../../agent-source/src/migration/sections/ram/postcopy-pusher.ts';
import { MigrationStats } from '../../../agent-source/src/migration/stats.ts';
import { TokenBucket } from '../../../agent-source/src/migration/token-bucket.ts';
import { recordingChannel } from '../../helpers/recording-channel.ts';

function setup(pageCount: number, absentPages?: number[]) {
  const memory = GuestMemory.allocate(pageCount * 4096);
  const absent = new Bitmap(pageCount);
  if (absentPages) for (const n of absentPages) absent.set(n);
  else absent.setAll();
  const stats = new MigrationStats();
  const sent = new Map<number, number>();
  const pusher = new PostcopyPusher(
    {
      memory,
      stats,
      bucket: new TokenBucket({}),
      logger: silentLogger(),
      onPageSent: (page) => sent.set(page, (sent.get(page) ?? 0) + 1),
      sentBefore: () => false,
      signal: new AbortController().signal,
    },
    absent,
    3,
  );
  // What the worker sees: the same buffer, another view of it (as after postMessage).
  const worker = new FaultAnswers(pageCount, pusher.answers.buffer);
  return { pusher, worker, stats, sent };
}

/** Run the push to its end; the batches it sent. */
async function pushRest(pusher: PostcopyPusher): Promise<number[][]> {
  const { channel, batches } = recordingChannel();
  await pusher.pushAll(channel);
  return batches;
}

/** What the worker does for a fresh answer: claim, count (one raw page each). */
function workerAnswers(worker: FaultAnswers, pages: number[]): number[] {
  const fresh = pages.filter((n) => worker.absent.has(n) && worker.claim(n, SENT_BY_FAULT_WORKER));
  worker.add(Counter.Fetched, fresh.length);
  worker.add(Counter.RawPages, fresh.length);
  worker.add(Counter.PayloadBytes, fresh.length * 4096);
  if (pages.length) worker.asked(pages[pages.length - 1]!);
  return fresh;
}

describe('FaultAnswers', () => {
  it('holds the absent map; a page is claimed once, by whoever comes first', () => {
    const absent = new Bitmap(100);
    absent.set(7);
    const answers = new FaultAnswers(100, absent);
    const other = new FaultAnswers(100, answers.buffer);
    expect(other.absent.has(7)).toBe(true);
    expect(other.absent.has(8)).toBe(false);
    expect(other.claim(7, SENT_BY_FAULT_WORKER)).toBe(true);
    expect(answers.claim(7, SENT_BY_PUSHER)).toBe(false);
    expect(other.claim(7, SENT_BY_FAULT_WORKER)).toBe(false);
    expect(answers.sentBy(7)).toBe(SENT_BY_FAULT_WORKER);
    answers.reset(7);
    expect(answers.sentBy(7)).toBe(0);
    other.add(Counter.Again, 3);
    expect(answers.count(Counter.Again)).toBe(3);
  });
});

describe('PostcopyPusher with a fault worker', () => {
  it('every absent page is sent once, by the worker or the push; the ledger has every one', async () => {
    const { pusher, worker, sent } = setup(512);
    const answered = workerAnswers(worker, [40, 41, 300]);
    expect(pusher.fetchedOnDemand).toBe(3);
    expect(pusher.remaining).toBe(509);
    const pushed = (await pushRest(pusher)).flat();
    expect(pushed).toHaveLength(509);
    expect(pushed.filter((n) => answered.includes(n))).toEqual([]);
    expect(pusher.pushed).toBe(509);
    expect(pusher.fetchedOnDemand + pusher.pushed).toBe(512);
    expect(pusher.remaining).toBe(0);
    // The push recorded the worker's pages from memory: each page once in the ledger.
    expect(sent.size).toBe(512);
    expect([...sent.values()].every((times) => times === 1)).toBe(true);
  });

  it('the push goes on from the page the worker was last asked for (pre-paging)', async () => {
    const { pusher, worker } = setup(512);
    workerAnswers(worker, [200]);
    const batches = await pushRest(pusher);
    expect(batches[0]!.slice(0, 3)).toEqual([201, 202, 203]);
  });

  it('a page the push sent is the worker’s to answer again only, and the main thread answers nothing twice fresh', () => {
    const { pusher, worker } = setup(256);
    const fault = recordingChannel(['fault-thread']);
    pusher.answer({ id: 1, pages: Uint32Array.from([5]) }, fault.channel);
    expect(workerAnswers(worker, [5, 6])).toEqual([6]);
    // The worker died: the main thread answers page 6 again (sent already), not as fetched.
    pusher.answer({ id: 2, pages: Uint32Array.from([6]) }, fault.channel);
    expect(fault.batches).toEqual([[5], [6]]);
    expect(pusher.answeredAgain).toBe(1);
    expect(pusher.fetchedOnDemand).toBe(2);
  });

  it('settle() folds the worker’s counters into the stats once', () => {
    const { pusher, worker, stats } = setup(256);
    workerAnswers(worker, [1, 2]);
    worker.add(Counter.Again, 1);
    pusher.settle();
    pusher.settle();
    expect(stats.rawPages).toBe(2);
    expect(stats.pagePayloadBytes).toBe(2 * 4096);
    expect(stats.resentPages).toBe(1);
    workerAnswers(worker, [3]);
    pusher.settle();
    expect(stats.rawPages).toBe(3);
  });

  it('resync after a reconnect: pages the worker sent that never arrived are unsent again, claims cleared', async () => {
    const { pusher, worker, stats } = setup(256);
    workerAnswers(worker, [10, 11]);
    const missing = new Bitmap(256);
    missing.set(10); // 11 arrived, 10 was lost with the connection
    pusher.resync(missing);
    expect(worker.sentBy(10)).toBe(0);
    expect(worker.sentBy(11)).toBe(SENT_BY_FAULT_WORKER);
    expect(stats.resentPages).toBe(1);
    expect(pusher.remaining).toBe(255);
    const pushed = (await pushRest(pusher)).flat();
    expect(pushed).toContain(10);
    expect(pushed).not.toContain(11);
    expect(pushed).toHaveLength(255);
  });
});
