/**
 * Every migration measures its VM's dirty rate as it starts (QEMU's calc-dirty-rate, page
 * sampling: shared/src/vm/dirty-rate.ts), in parallel with setup and round 0, and the report
 * records it — the figure a reader needs to judge the rounds, and the input of `--mode auto`.
 * Sampling only reads memory, so it takes nothing from the migration's dirty log.
 *
 * The window is QEMU's default, 1 s, with the curve at 62, 125, 250 and 500 ms, sampling about
 * 2048 pages (START_SAMPLE_PAGES): a hot set's saturation shows only over hundreds of ms, and
 * the model needs it. The guest must run here for the whole window, so the switchover's pause
 * cuts it short: the report then has the curve up to the last checkpoint passed (a shorter
 * window), or, paused before the first (a post-copy pauses after setup), says why there is none.
 */
import { toMigrationError } from '@livemig/shared';
import { DIRTY_RATE_LIMITS, measureDirtyRate, type DirtyRateMeasurement } from '@livemig/shared/vm';

/** The window and sampling of the measurement at start. */
export const START_DIRTY_RATE = { calcTimeMs: 1000, checkpoints: 4 } as const;
/**
 * About this many pages sampled, whatever the VM's size (QEMU's most, 16384 per GiB, for a
 * 128 MiB VM; fewer per GiB above; more below, up to every page): the six passes then hash
 * ~50 MB on the source's main thread during the migration, not 400 MB per GiB. The standard
 * error stays within ~2 points. Small VMs get the same count, not the per-GiB share: at 16384
 * per GiB a 16 MiB VM's 4 MiB hot set was 64 sampled pages, and a 2-point curve that noisy
 * showed no bend — dirty-limit then took the slope for half what it was and throttled the
 * first round to 82 % where 91 % held the cap (throttle.integration, 1.5× the cap).
 */
export const START_SAMPLE_PAGES = 2048;

/** samplePagesPerGiB for START_SAMPLE_PAGES pages of `memoryBytes`, within QEMU's bounds. */
export function startSamplePagesPerGiB(memoryBytes: number): number {
  const perGiB = Math.round(START_SAMPLE_PAGES / (memoryBytes / 2 ** 30));
  return Math.min(DIRTY_RATE_LIMITS.maxSamplePagesPerGiB, Math.max(DIRTY_RATE_LIMITS.minSamplePagesPerGiB, perGiB));
}

export interface StartDirtyRate {
  /** Settles when the measurement ended (never rejects). */
  readonly done: Promise<void>;
  measurement: DirtyRateMeasurement | null;
  /** Why there is no measurement (cancelled by the pause, the VM left). */
  note: string | undefined;
  /** The measurement so far: the curve to the last checkpoint passed (null before the first). */
  soFar: DirtyRateMeasurement | null;
  /** Settles once `points` checkpoints are in, or the measurement ended (never rejects). */
  whenPoints(points: number): Promise<void>;
  /** Stop it now (the VM pauses); `why` goes into the note. */
  cancel(why: string): void;
}

export function startDirtyRate(memory: Parameters<typeof measureDirtyRate>[0]): StartDirtyRate {
  const stop = new AbortController();
  const waiting: { points: number; resolve: () => void }[] = [];
  const state: StartDirtyRate = {
    measurement: null,
    note: undefined,
    soFar: null,
    cancel: (why) => stop.abort(why),
    done: Promise.resolve(),
    whenPoints: (points) =>
      (state.soFar?.curve?.length ?? 0) >= points || state.measurement !== null || state.note !== undefined
        ? Promise.resolve()
        : Promise.race([new Promise<void>((resolve) => waiting.push({ points, resolve })), state.done]),
  };
  const onCheckpoint = (soFar: DirtyRateMeasurement): void => {
    state.soFar = soFar;
    for (const w of waiting.filter((w) => (soFar.curve?.length ?? 0) >= w.points)) w.resolve();
  };
  (state as { done: Promise<void> }).done = measureDirtyRate(
    memory,
    { ...START_DIRTY_RATE, samplePagesPerGiB: startSamplePagesPerGiB(memory.bytes) },
    {
      signal: stop.signal,
      minSamplePages: START_SAMPLE_PAGES,
      keepPartial: true,
      onCheckpoint,
    },
  ).then(
    (m) => {
      state.measurement = m;
      if (m.windowMs < START_DIRTY_RATE.calcTimeMs * 0.9) {
        state.note = `window cut to ${Math.round(m.windowMs)} ms: ${String(stop.signal.reason)}`;
      }
    },
    (error: unknown) => {
      state.note = stop.signal.aborted
        ? `not measured: ${String(stop.signal.reason)} before the first checkpoint of the window`
        : `not measured: ${toMigrationError(error).message}`;
    },
  );
  return state;
}
