/** RunRate (run-rate.ts): running time and steps across pauses, and the ~1 s recent rate. */
import { describe, expect, it } from 'vitest';
import { RunRate } from '../../../../shared/src/vm/run-rate.ts';

describe('RunRate', () => {
  it('is all zero before the VM ever ran', () => {
    expect(new RunRate().sample(0, 1000)).toEqual({
      runningMs: 0,
      ranSteps: 0,
      averageStepsPerSec: 0,
      recentStepsPerSec: 0,
    });
  });

  it('adds up running time and steps across pauses, not counting steps imported meanwhile', () => {
    const rate = new RunRate();
    rate.started(0, 0);
    rate.stopped(1000, 500);
    // Paused from 500 to 2000 ms; a CPU import moved the counter from 1000 to 5000.
    rate.started(5000, 2000);
    const figures = rate.sample(5500, 2250);
    expect(figures.runningMs).toBe(750);
    expect(figures.ranSteps).toBe(1500);
    expect(figures.averageStepsPerSec).toBe(2000);
    rate.stopped(6000, 2500);
    rate.stopped(9999, 9999); // not running: ignored
    expect(rate.sample(6000, 3000)).toMatchObject({ runningMs: 1000, ranSteps: 2000, averageStepsPerSec: 2000 });
  });

  it('measures the recent rate between calls over about a second, the average until samples are 50 ms apart', () => {
    const rate = new RunRate();
    rate.started(0, 0);
    expect(rate.sample(0, 0).recentStepsPerSec).toBe(0);
    expect(rate.sample(100, 10).recentStepsPerSec).toBe(10_000); // 10 ms after the first sample: the average
    expect(rate.sample(1000, 100).recentStepsPerSec).toBe(10_000);
    // From 1 s on the VM runs 10× slower; samples older than 1 s drop out of the window.
    for (let t = 200; t <= 3000; t += 100) rate.sample(1000 + (t - 100), t);
    const figures = rate.sample(1000 + 2900, 3000);
    expect(figures.recentStepsPerSec).toBeCloseTo(1000, 5);
    expect(figures.averageStepsPerSec).toBeCloseTo(3900 / 3, 5);
  });
});
