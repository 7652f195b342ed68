/**
 * The highest value a reading of a process took, sampled in the background to catch a peak
 * between two observations (rss.ts: resident memory; threads.ts: OS threads).
 */

export interface PeakSampler {
  /** The highest reading since start. */
  readonly peak: number;
  stop(): void;
}

/** Take `read()` every `intervalMs` until stop(); a reading that throws (the process is gone) ends the sampling. */
export function samplePeak(read: () => number, intervalMs: number): PeakSampler {
  let peak = read();
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, read());
    } catch {
      clearInterval(timer);
    }
  }, intervalMs);
  return {
    get peak() {
      return peak;
    },
    stop: () => clearInterval(timer),
  };
}
