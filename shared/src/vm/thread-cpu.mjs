// A thread's own CPU time, read where Node 20 has no process.threadCpuUsage(): Linux's
// /proc/<pid>/task/<tid>/schedstat, whose first field is the nanoseconds the thread has run on a
// CPU since it started. Plain JavaScript on purpose: the plain-JavaScript workers (prefault,
// digest, compress) run it without a TypeScript loader, and thread-registry.ts runs the same code
// on the host side.
//
// The handshake with a worker is a 16-byte SharedArrayBuffer (a "thread slot") the host passes
// in its workerData: the worker writes its thread id into it when it starts (announceThread) and
// its final CPU time when it ends by itself (sealThread). In between, the host reads the thread's
// schedstat by that id itself, synchronously, whenever it wants — so a busy worker (the vCPU,
// which handles no messages while it runs) never has to answer anything, and the host never
// waits on a worker.
import { readFileSync, readlinkSync } from 'node:fs';

/** Bytes of a thread slot: Int32 thread id at 0 (0: not up yet), Float64 final CPU ns at 8 (-1: still running). */
export const THREAD_SLOT_BYTES = 16;
const TID = 0;
const FINAL = 1;

/** The nanoseconds on CPU in a schedstat line ("<run ns> <wait ns> <slices>"); null if it is not one. */
export function parseSchedstat(text) {
  if (typeof text !== 'string') return null;
  const match = /^(\d{1,20}) \d{1,20} \d{1,20}\s*$/.exec(text);
  if (!match) return null;
  const ns = Number(match[1]);
  return Number.isSafeInteger(ns) ? ns : null;
}

/** The calling thread's id (its Linux task id); null where there is no /proc/thread-self (not Linux). */
export function ownThreadId() {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isSafeInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/**
 * CPU nanoseconds of thread `tid` of this process since it started (`tid` omitted: the calling
 * thread); null where it cannot be read (not Linux, or the thread has exited).
 */
export function threadCpuNs(tid) {
  const path = tid === undefined ? '/proc/thread-self/schedstat' : `/proc/self/task/${tid}/schedstat`;
  try {
    return parseSchedstat(readFileSync(path, 'latin1'));
  } catch {
    return null;
  }
}

/** A fresh thread slot (no thread yet, not ended). */
export function newThreadSlot() {
  const buffer = new SharedArrayBuffer(THREAD_SLOT_BYTES);
  new Float64Array(buffer)[FINAL] = -1;
  return buffer;
}

/** In a worker, as it starts: write this thread's id into `slot` (a no-op without a slot or off Linux). */
export function announceThread(slot) {
  if (!(slot instanceof SharedArrayBuffer) || slot.byteLength < THREAD_SLOT_BYTES) return;
  const tid = ownThreadId();
  if (tid !== null) Atomics.store(new Int32Array(slot), TID, tid);
}

/** In a worker, as it ends by itself: write this thread's final CPU time into `slot`. */
export function sealThread(slot) {
  if (!(slot instanceof SharedArrayBuffer) || slot.byteLength < THREAD_SLOT_BYTES) return;
  const ns = threadCpuNs();
  if (ns !== null) new Float64Array(slot)[FINAL] = ns;
}

/** The thread id a slot holds (null: not announced), and its final CPU ns (null: not sealed). */
export function readThreadSlot(slot) {
  const tid = Atomics.load(new Int32Array(slot), TID);
  const final = new Float64Array(slot)[FINAL];
  return { tid: tid > 0 ? tid : null, finalNs: final >= 0 ? final : null };
}
