/**
 * The fault threads' priority (fault-priority.mjs): the nice value asked for is set on the calling
 * thread only — the rest of the process keeps its own — and a value that is no nice value is ignored.
 */
import { Worker } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FAULT_THREAD_NICE, prioritizeFaultThread } from '../../../../shared/src/vm/fault-priority.mjs';
import { firstMessageThenTerminate } from '../../../helpers/worker-answer.ts';

/** The calling thread's nice value (Linux: field 19 of /proc/thread-self/stat). */
function ownNice(): number {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

/** Run prioritizeFaultThread(env) in a thread of its own; what it returned and that thread's nice value after. */
async function inThread(env: Record<string, string>): Promise<{ set: number | null; nice: number }> {
  const module = new URL('../../../../shared/src/vm/fault-priority.mjs', import.meta.url).href;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { readFileSync } = require('node:fs');
    import(workerData.module).then(({ prioritizeFaultThread }) => {
      const set = prioritizeFaultThread(workerData.env);
      const stat = readFileSync('/proc/thread-self/stat', 'utf8');
      parentPort.postMessage({ set, nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) });
    });`;
  return firstMessageThenTerminate<{ set: number | null; nice: number }>(
    new Worker(code, { eval: true, workerData: { module, env } }),
  );
}

describe.runIf(process.platform === 'linux')('prioritizeFaultThread', () => {
  it('sets the nice value asked for on the calling thread only (raising it is always permitted)', async () => {
    const before = ownNice();
    expect(await inThread({ LIVEMIG_FAULT_THREAD_NICE: '7' })).toEqual({ set: 7, nice: 7 });
    expect(ownNice(), 'this thread keeps its own').toBe(before);
  });

  it('asks for FAULT_THREAD_NICE by default; where that is not permitted, keeps the default priority', async () => {
    const { set, nice } = await inThread({});
    expect([FAULT_THREAD_NICE, null]).toContain(set);
    expect(nice).toBe(set ?? 0);
  });

  it('ignores a value that is no nice value', () => {
    expect(prioritizeFaultThread({ LIVEMIG_FAULT_THREAD_NICE: '-21' })).toBeNull();
    expect(prioritizeFaultThread({ LIVEMIG_FAULT_THREAD_NICE: 'fast' })).toBeNull();
  });
});
