/**
 * Giving a destroyed VM's guest memory back to the OS promptly: this module owns the one
 * request for a garbage collection that ToyVm.destroy() makes.
 *
 * Why it is needed: guest memory is SharedArrayBuffers, which nothing can free explicitly (they
 * cannot be detached or transferred). Their backing store is freed when the last isolate that
 * references them collects them: the vCPU worker's isolate goes away when the worker exits, but
 * the agent's main isolate frees them only at its next major GC. An idle agent allocates almost
 * nothing, so that GC does not come: measured here (Node 20.20, 1 GiB VM, init random, every
 * reference dropped), RSS stayed at ~1.1 GiB for ~100 s, until V8's memory reducer ran, and it
 * comes down within a second of one major GC.
 *
 * So destroy() asks for one major GC, asynchronously (V8 runs it from a task, not inside the
 * caller) and coalesced (VMs destroyed together cost one GC), and only for VMs large enough for
 * it to matter. The GC function is the one --expose-gc installs; when the process was not started
 * with it, V8's flag is set just long enough to create one context that has it (the idiom
 * jest's leak detector uses), then cleared again, so no other context sees a `gc` global.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Below this, one VM's memory is not worth a major GC (V8's own external-memory slack is 64 MiB). */
export const RECLAIM_MIN_BYTES = 64 * 1024 * 1024;

type GcFunction = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async' }) => unknown;

let gcFunction: GcFunction | null | undefined;
let scheduled = false;

/**
 * Asks for one major GC soon, so that `bytes` of buffers just dropped go back to the OS; does
 * nothing below RECLAIM_MIN_BYTES. Never throws; never keeps the process alive.
 */
export function reclaimSoon(bytes: number): void {
  if (bytes < RECLAIM_MIN_BYTES || scheduled) return;
  const gc = (gcFunction ??= obtainGc());
  if (!gc) return;
  scheduled = true;
  setTimeout(() => {
    scheduled = false;
    try {
      gc({ type: 'major', execution: 'async' });
    } catch {
      // A GC that could not be requested only means the memory comes back later.
    }
  }, 0).unref();
}

function obtainGc(): GcFunction | null {
  const own = (globalThis as { gc?: GcFunction }).gc;
  if (typeof own === 'function') return own;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as GcFunction) : null;
  } catch {
    return null;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
