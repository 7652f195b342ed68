/**
 * The run-rate sampler behind ToyVm.stats(): this module owns the bookkeeping of how long a VM
 * ran and how many steps it ran meanwhile (across pauses), and the recent rate.
 *
 * The recent rate is measured between calls, not by a timer: each sample() keeps (time, steps)
 * at most every 50 ms and drops those older than about a second, so the rate is over the last
 * ~1 s when stats are read regularly, and falls back to the average when the samples are too
 * close together to mean anything (< 50 ms apart).
 */

/** How far back the recent rate looks. */
const RATE_WINDOW_MS = 1000;
/** Samples closer together than this are not kept (and give no rate of their own). */
const MIN_SAMPLE_GAP_MS = 50;

/** Figures in steps; ToyVm turns them into page writes. */
export interface RunFigures {
  /** Wall time spent running, ms (the current run included). */
  runningMs: number;
  /** Steps run meanwhile (steps imported with a CPU state excluded). */
  ranSteps: number;
  /** ranSteps / runningMs, per second (0 before any running). */
  averageStepsPerSec: number;
  /** Over about the last second (see the header). */
  recentStepsPerSec: number;
}

/** Running time and step-rate bookkeeping of one VM. */
export class RunRate {
  #running = false;
  #startedAt = 0;
  #startSteps = 0;
  #ranMs = 0;
  #ranSteps = 0;
  #samples: { t: number; steps: number }[] = [];

  /** The VM starts running with its step counter at `steps`. */
  started(steps: number, now = performance.now()): void {
    this.#running = true;
    this.#startedAt = now;
    this.#startSteps = steps;
  }

  /** The VM stopped running with its step counter at `steps`. */
  stopped(steps: number, now = performance.now()): void {
    if (!this.#running) return;
    this.#running = false;
    this.#ranMs += now - this.#startedAt;
    this.#ranSteps += steps - this.#startSteps;
  }

  /** The figures now, with the step counter at `steps`; also records a sample for the recent rate. */
  sample(steps: number, now = performance.now()): RunFigures {
    const running = this.#running;
    const runningMs = this.#ranMs + (running ? now - this.#startedAt : 0);
    const ranSteps = this.#ranSteps + (running ? steps - this.#startSteps : 0);
    const averageStepsPerSec = runningMs > 0 ? (ranSteps * 1000) / runningMs : 0;
    const samples = this.#samples;
    const last = samples[samples.length - 1];
    if (!last || now - last.t >= MIN_SAMPLE_GAP_MS) samples.push({ t: now, steps });
    while (samples.length > 2 && samples[1]!.t <= now - RATE_WINDOW_MS) samples.shift();
    const first = samples[0]!;
    const recentStepsPerSec =
      now - first.t >= MIN_SAMPLE_GAP_MS ? ((steps - first.steps) * 1000) / (now - first.t) : averageStepsPerSec;
    return { runningMs, ranSteps, averageStepsPerSec, recentStepsPerSec };
  }
}
