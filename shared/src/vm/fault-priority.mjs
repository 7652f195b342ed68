// The post-copy fault threads' scheduling priority: the destination's fault thread and the source's
// fault worker. A guest blocked on an absent page waits for three thread wake-ups in a row (the
// destination's fault thread noticing the fault, the source's worker reading the request, the
// fault thread reading the answer), and on a machine whose cores the bulk push keeps busy each
// wake-up can wait behind a running thread's time slice: measured on this 2-core machine, most of
// the fault latency's tail. These threads only ever wake, do microseconds of work and sleep, so
// they ask for a higher priority (a lower nice value) than the bulk work around them.
//
// Linux keeps a nice value per thread, and setpriority() for "this process" (pid 0) sets the
// calling thread's only. Lowering it needs CAP_SYS_NICE (or RLIMIT_NICE): without it the thread
// keeps the default priority, and the migration works as before. Plain JavaScript: the worker boot
// modules (agent-dest fault-thread-boot.mjs, agent-source fault-worker-boot.mjs) call it first.
import { setPriority } from 'node:os';

/** The nice value the fault threads ask for. */
export const FAULT_THREAD_NICE = -10;

/**
 * Give the calling thread the fault threads' priority (LIVEMIG_FAULT_THREAD_NICE overrides the
 * value, e.g. 0 to measure without it). Returns the nice value set, or null where not permitted.
 */
export function prioritizeFaultThread(env = process.env) {
  const asked = env.LIVEMIG_FAULT_THREAD_NICE;
  const nice = asked === undefined || asked === '' ? FAULT_THREAD_NICE : Number(asked);
  if (!Number.isInteger(nice) || nice < -20 || nice > 19) return null;
  try {
    setPriority(0, nice);
    return nice;
  } catch {
    return null; // not permitted here: the default priority
  }
}
