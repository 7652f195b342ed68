/**
 * The report's `threads` and `prefault` sections: where each side's cores went during a migration
 * (CPU time per thread), and how long the destination's pre-fault of arriving memory took.
 *
 * Each side turns two snapshots of its own threads (vm/thread-registry.ts: one as the migration
 * starts, one as its part ends) into a SideThreads with threadsBetween(), a pure function. The
 * destination sends its SideThreads and PrefaultReport to the source in its final statistics
 * (Resumed in pre-copy, Complete in post-copy), where checkSideThreads() and checkPrefault() take
 * them apart as the hostile input they are — at most MAX_THREADS threads, short names, finite
 * non-negative numbers — before anything joins the report.
 */
import { MigrationError } from '../errors.ts';
import type { ThreadSnapshot } from '../vm/thread-registry.ts';

/** One thread's share of a migration. */
export interface ThreadCpu {
  /** Its role: main, vcpu, prefault, compress, digest (a second thread of a role: "compress-2"). */
  name: string;
  /** CPU time it used during the migration, ms; null where unreadable (not Linux). */
  cpuMs: number | null;
  /** The part of the migration it was alive for, ms (its CPU time ÷ this = the share of a core it used). */
  wallMs: number;
}

/** One side's threads over its part of the migration. */
export interface SideThreads {
  /** The side's part of the migration, ms: the source's start → end; the destination's Setup → its last page and Ready (pre-copy) or Complete (post-copy). */
  wallMs: number;
  /** CPU time of the whole process over that time (every thread, including GC and libuv's), ms. */
  cpuMs: number;
  /** The main thread first, then the others by CPU time; the last, `other`, is the process's time no listed thread accounts for. */
  threads: ThreadCpu[];
}

/** Extra: each side's threads (issue 18). `dest` is null when the destination sent none. */
export interface ThreadsReport {
  source: SideThreads;
  dest: SideThreads | null;
}

/** Extra: the destination's pre-fault of the pages about to arrive (Setup's bitmap; issue 18). */
export interface PrefaultReport {
  /** Pages it set out to touch, and pages it touched. */
  pages: number;
  touched: number;
  /** Setup arrived → pre-fault started, ms. */
  startMs: number;
  /** Start → done, ms; null: not done when the destination's part ended. */
  ms: number | null;
  /** Setup → the first full pass's last page arrived (round 0's end; post-copy: every page present), ms; null: unknown. */
  firstPassMs: number | null;
  /** It was done before the first pass's last page arrived: off the critical path. null: no first pass seen. */
  offCriticalPath: boolean | null;
}

/** Most threads one side lists (more are folded into `other`); also the most accepted from the peer. */
export const MAX_THREADS = 32;
/** Longest thread name accepted from the peer. */
export const MAX_THREAD_NAME = 32;
/** The name of the process's time no listed thread accounts for (V8's GC helpers, libuv's pool). */
export const OTHER_THREADS = 'other';
/** Most ms a figure from the peer may say: about 11.6 days. */
const MAX_MS = 1e9;

const NS_PER_MS = 1e6;

/** ms to the µs: finer says nothing (a reading costs ~20 µs) and only lengthens the report. */
const toUs = (ms: number): number => Math.round(ms * 1000) / 1000;

/** `end − start` of one side's threads: each thread alive in the window, its CPU ms and wall ms there. */
export function threadsBetween(start: ThreadSnapshot, end: ThreadSnapshot): SideThreads {
  const before = new Map(start.threads.map((t) => [t.key, t.cpuNs]));
  const rows: Array<ThreadCpu & { key: number }> = [];
  for (const t of end.threads) {
    if (t.endedAt !== undefined && t.endedAt < start.at) continue; // ended before the window
    const from = Math.max(start.at, t.bornAt);
    const to = Math.min(end.at, t.endedAt ?? end.at);
    // Born in the window: everything it ever used is the window's.
    const prior = before.get(t.key);
    const base = t.bornAt >= start.at || prior === undefined ? 0 : prior;
    const cpuMs = t.cpuNs === null || base === null ? null : toUs(Math.max(0, t.cpuNs - base) / NS_PER_MS);
    rows.push({ key: t.key, name: t.name, cpuMs, wallMs: toUs(Math.max(0, to - from)) });
  }
  const main = rows.filter((r) => r.key === 0);
  const others = rows.filter((r) => r.key !== 0).sort((a, b) => (b.cpuMs ?? 0) - (a.cpuMs ?? 0));
  const listed = [...main, ...others].slice(0, MAX_THREADS - 1);
  const seen = new Map<string, number>();
  // Names by age (the first vcpu is "vcpu", the next "vcpu-2"), listed in the order above.
  const names = new Map<number, string>();
  for (const { key, name } of [...listed].sort((a, b) => a.key - b.key)) {
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    names.set(key, n === 1 ? name : `${name}-${n}`);
  }
  const threads: ThreadCpu[] = listed.map(({ key, cpuMs, wallMs }) => ({ name: names.get(key)!, cpuMs, wallMs }));
  const wallMs = toUs(Math.max(0, end.at - start.at));
  const cpuMs = toUs(Math.max(0, end.processCpuNs - start.processCpuNs) / NS_PER_MS);
  const accounted = threads.reduce((sum, t) => sum + (t.cpuMs ?? 0), 0);
  threads.push({ name: OTHER_THREADS, cpuMs: toUs(Math.max(0, cpuMs - accounted)), wallMs });
  return { wallMs, cpuMs, threads };
}

function refuse(what: string): MigrationError {
  return new MigrationError('ERR_BAD_METADATA', `the destination's ${what}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A finite number in [0, MAX_MS], or undefined. */
function ms(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= MAX_MS ? value : undefined;
}

/**
 * `value` (from the peer) as a SideThreads — a fresh object of the known fields only — or why
 * not (ERR_BAD_METADATA): at most MAX_THREADS threads, names of 1–MAX_THREAD_NAME printable
 * characters, every figure a finite number of ms in [0, 1e9] (a thread's CPU may be null).
 */
export function checkSideThreads(value: unknown): SideThreads | MigrationError {
  if (!isRecord(value)) return refuse('thread figures are not a map');
  const wallMs = ms(value.wallMs);
  const cpuMs = ms(value.cpuMs);
  if (wallMs === undefined || cpuMs === undefined) return refuse('thread figures: wallMs or cpuMs is not a finite ms');
  const list = value.threads;
  if (!Array.isArray(list) || list.length > MAX_THREADS) {
    return refuse(`thread figures: threads is not a list of at most ${MAX_THREADS}`);
  }
  const threads: ThreadCpu[] = [];
  for (const [i, t] of list.entries()) {
    if (!isRecord(t)) return refuse(`thread figures: thread ${i} is not a map`);
    const { name } = t;
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_THREAD_NAME || !/^[\w .#()-]+$/.test(name)) {
      return refuse(`thread figures: thread ${i}'s name is not 1–${MAX_THREAD_NAME} plain characters`);
    }
    const cpu = t.cpuMs === null ? null : ms(t.cpuMs);
    const wall = ms(t.wallMs);
    if (cpu === undefined || wall === undefined)
      return refuse(`thread figures: thread ${i}'s cpuMs or wallMs is not a finite ms`);
    threads.push({ name, cpuMs: cpu, wallMs: wall });
  }
  return { wallMs, cpuMs, threads };
}

/** `value` (from the peer) as a PrefaultReport — fresh, known fields only — or why not (ERR_BAD_METADATA). */
export function checkPrefault(value: unknown): PrefaultReport | MigrationError {
  if (!isRecord(value)) return refuse('pre-fault figures are not a map');
  const { pages, touched, offCriticalPath } = value;
  const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= 2 ** 32;
  if (!count(pages) || !count(touched) || touched > pages) {
    return refuse('pre-fault figures: pages or touched is not a page count (touched ≤ pages)');
  }
  const startMs = ms(value.startMs);
  const took = value.ms === null ? null : ms(value.ms);
  const firstPassMs = value.firstPassMs === null ? null : ms(value.firstPassMs);
  if (startMs === undefined || took === undefined || firstPassMs === undefined) {
    return refuse('pre-fault figures: startMs, ms or firstPassMs is not a finite ms (or null)');
  }
  if (offCriticalPath !== null && typeof offCriticalPath !== 'boolean') {
    return refuse('pre-fault figures: offCriticalPath is not a boolean or null');
  }
  return { pages, touched, startMs, ms: took, firstPassMs, offCriticalPath };
}

/**
 * The destination's pre-fault figures from what it measured (performance.now() times): started
 * and done (undefined: not yet), Setup's arrival, and the first pass's end (undefined: not seen).
 */
export function prefaultReport(f: {
  pages: number;
  touched: number;
  setupAt: number;
  startedAt: number;
  doneAt: number | undefined;
  firstPassAt: number | undefined;
}): PrefaultReport {
  const done = f.doneAt;
  const firstPass = f.firstPassAt;
  return {
    pages: f.pages,
    touched: f.touched,
    startMs: toUs(Math.max(0, f.startedAt - f.setupAt)),
    ms: done === undefined ? null : toUs(Math.max(0, done - f.startedAt)),
    firstPassMs: firstPass === undefined ? null : toUs(Math.max(0, firstPass - f.setupAt)),
    offCriticalPath: firstPass === undefined ? null : done !== undefined && done <= firstPass,
  };
}
