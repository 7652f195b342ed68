/** Types of fault-priority.mjs (plain JavaScript, run by the fault threads' boot modules). */
export declare const FAULT_THREAD_NICE: number;
export declare function prioritizeFaultThread(env?: Record<string, string | undefined>): number | null;
