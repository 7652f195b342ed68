/** Types of thread-cpu.mjs (plain JavaScript, so the plain-JavaScript workers run it without a loader). */

/** Bytes of a thread slot (a SharedArrayBuffer a worker announces its thread id in). */
export declare const THREAD_SLOT_BYTES: 16;

/** The nanoseconds on CPU in a schedstat line ("<run ns> <wait ns> <slices>"); null if it is not one. */
export declare function parseSchedstat(text: unknown): number | null;

/** The calling thread's id (its Linux task id); null where there is no /proc/thread-self (not Linux). */
export declare function ownThreadId(): number | null;

/** CPU ns of thread `tid` of this process (omitted: the calling thread); null where it cannot be read. */
export declare function threadCpuNs(tid?: number): number | null;

/** A fresh thread slot (no thread yet, not ended). */
export declare function newThreadSlot(): SharedArrayBuffer;

/** In a worker, as it starts: write this thread's id into `slot`. */
export declare function announceThread(slot: unknown): void;

/** In a worker, as it ends by itself: write this thread's final CPU time into `slot`. */
export declare function sealThread(slot: unknown): void;

/** The thread id a slot holds (null: not announced), and its final CPU ns (null: not sealed). */
export declare function readThreadSlot(slot: SharedArrayBuffer): { tid: number | null; finalNs: number | null };
