/**
 * A process's resident memory as the kernel counts it (VmRSS in /proc/<pid>/status), read now,
 * or sampled in the background to catch the peak between two observations.
 */
import { readFileSync } from 'node:fs';
import { samplePeak, type PeakSampler } from './peak-sampler.ts';

export const MiB = 2 ** 20;

/** VmRSS of process `pid`, in bytes. */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

export type RssSampler = PeakSampler;

/** Sample VmRSS of `pid` every `intervalMs` until stop(); a process that is gone ends the sampling. */
export function sampleRss(pid: number, intervalMs = 20): RssSampler {
  return samplePeak(() => rssBytes(pid), intervalMs);
}
