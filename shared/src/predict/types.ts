/**
 * The prediction model's inputs and outputs (issue 16): what a migration will cost, per
 * technique, from what was measured before it ran — the VM's dirty-rate curve and the link's
 * bandwidth and RTT. Pure data; the model is in model.ts, the choice in choose.ts. Times ms,
 * sizes bytes, rates bytes per second.
 */

/** The techniques the model predicts (the engine's modes). */
export type Technique = 'precopy' | 'postcopy' | 'hybrid';
export const TECHNIQUES: readonly Technique[] = ['precopy', 'postcopy', 'hybrid'];

/** What `--mode auto` optimises. */
export type Objective = 'downtime' | 'total-time' | 'bytes';
export const OBJECTIVES: readonly Objective[] = ['downtime', 'total-time', 'bytes'];

/**
 * How the guest dirties memory: W(t) = wss × (1 − e^(−rate·t/wss)) distinct bytes dirtied in a
 * window of t seconds — uniform random writes over a working set of `wssBytes` at `rateBps`
 * (the coupon collector's curve); `wssBytes` null: no bound seen (W(t) = rate·t, up to memory).
 */
export interface DirtyCurve {
  /** Distinct bytes dirtied per second at the start of a window (the curve's slope at 0). */
  rateBps: number;
  /** The working set the curve saturates at; null when the measurement saw no bound. */
  wssBytes: number | null;
}

/** The link as measured (or given). */
export interface LinkEstimate {
  /** Payload bytes per second the migration stream moves (the link, or the engine if slower). */
  bandwidthBps: number;
  /**
   * The rate of the rounds after the first and of the stop-and-copy, when measured apart: where
   * the engine, not the link, is the bottleneck they run faster than round 0 (the destination's
   * memory is faulted in by then, and a paused guest takes no CPU). @default bandwidthBps
   */
  resendBandwidthBps?: number;
  /**
   * The rate of the stop-and-copy's final set, when measured apart: the guest is paused, and
   * where the engine sets the pace its CPU goes to the copy (loopback: 300–850 MB/s against
   * 200–400 for rounds while it runs). @default resendBandwidthBps
   */
  stopCopyBandwidthBps?: number;
  rttMs: number;
  /** Where the figures came from, for the report (e.g. "round 0 so far", "idle calibration", "--link-bandwidth"). */
  source: string;
}

/**
 * The engine options a technique can carry (issue 17), as the migrate flags name them:
 * `--compress`, `--compress-threads`, `--xbzrle`, `--xbzrle-cache`, `--dedup`, and a throttle
 * (`--auto-converge` with its knobs, or `--dirty-limit`). Absent fields: not modelled (raw
 * pages, no throttle), whatever the engine's default.
 */
export interface TechniqueOptions {
  compress?: 'auto' | 'off' | 'lz4' | 'brotli';
  /** Worker threads compressing. @default 1 */
  compressThreads?: number;
  xbzrle?: 'auto' | 'on' | 'off';
  /** The source's cache of sent pages for deltas, bytes. @default 64 MiB */
  xbzrleCacheBytes?: number;
  dedup?: 'auto' | 'on' | 'off';
  throttle?: ThrottleOption;
  /** Bulk channels for the pre-copy rounds (--channels, 1..8; above 1 parallel: channels.ts). */
  channels?: number;
}

/**
 * What throttles the guest: the engine's controller's settings (agent-source throttle.ts
 * ThrottleSettings is this type) and the model's throttle option, one definition for both.
 */
export type ThrottleOption =
  | {
      kind: 'auto-converge';
      /** The first throttle, percent (1..99): QEMU's cpu-throttle-initial. */
      initialPercent: number;
      /** Added per hot round once on, percent (1..99): cpu-throttle-increment. */
      incrementPercent: number;
      /** Never above this, percent (1..99): max-cpu-throttle. */
      maxPercent: number;
      /** A round is hot when dirtied bytes exceed this % of transferred bytes (1..100): throttle-trigger-threshold. */
      triggerThresholdPercent: number;
    }
  | {
      kind: 'dirty-limit';
      /** The cap on the guest's dirty rate, bytes per second. */
      limitBps: number;
      /** Never above this, percent (1..99). */
      maxPercent: number;
    };

/** A codec's figures: output ÷ input over the VM's non-zero pages, and input bytes per second per thread. */
export interface CodecFigures {
  ratio: number;
  bps: number;
}

/**
 * What the VM's pages are like, for the encodings: measured (sampled pages through the real
 * codecs: encodings.ts sampleCodecFigures; or an earlier migration's `encodings` report:
 * pageFiguresFromReport), or the priors (DEFAULT_PAGE_FIGURES).
 */
export interface PageFigures {
  /** Per codec; a codec not here is not modelled (compression predicted off). */
  codecs: Partial<Record<'lz4' | 'brotli', CodecFigures>>;
  /** Fraction of the non-zero pages round 0 can send as a reference (their content was sent before). */
  dupFraction: number;
  /** XBZRLE: a re-sent page's delta bytes ÷ page size. */
  deltaRatio: number;
  /** Where the figures came from, for the report. */
  source: string;
}

export interface ModelInputs {
  memoryBytes: number;
  pageSize: number;
  /** Fraction of pages that are all zero (sent as a few bytes each). @default 0 */
  zeroFraction?: number;
  dirty: DirtyCurve;
  link: LinkEstimate;
  /** The engine's limits in force (the migrate params). */
  downtimeLimitMs: number;
  maxRounds: number;
  /** Hybrid: pre-copy rounds before the switch to post-copy; null: until the rule gives up (the engine's default). */
  postcopyAfterRounds: number | null;
  /**
   * Fixed costs measured on this host and link (an idle migration's setup and downtime), or the
   * model's defaults: setup (handshake → first page), and the switchover's own cost (pause,
   * CPU and devices, digests, resume) on top of the pages still to send, and the tail after
   * the resume (verification, the record) that the total includes. model.ts overheadsFromIdle.
   */
  overheads?: { setupMs: number; switchoverMs: number; tailMs: number };
  /**
   * The same, from an idle post-copy migration, for post-copy (and hybrid's switch and tail):
   * its setup is longer — the destination's vCPU must be running before the VM resumes there,
   * where pre-copy starts it during round 0. @default overheads
   */
  postcopyOverheads?: { setupMs: number; switchoverMs: number; tailMs: number };
  /** Encodings and throttle the technique runs with (issue 17). @default none: raw pages, no throttle */
  options?: TechniqueOptions;
  /** The pages' figures the encodings need. @default DEFAULT_PAGE_FIGURES (encodings.ts) */
  pages?: PageFigures;
}

/** The model's answer for one technique. */
export interface Prediction {
  technique: Technique;
  /** Pre-copy rounds (round 0 counts); hybrid: before the switch; post-copy: 0. */
  rounds: number;
  totalMs: number;
  downtimeMs: number;
  /** Bytes on the wire (page payload and per-page headers). */
  wireBytes: number;
  /** Pre-copy: the rule that ends the rounds (converged, max-rounds, not-shrinking); else 'postcopy'. */
  switchover: 'converged' | 'nothing-dirty' | 'max-rounds' | 'not-shrinking' | 'postcopy';
  /** Post-copy and hybrid: bytes the guest is expected to fault on after the switch (its working set still absent). */
  faultBytes?: number;
  /** The options predicted with, when any (ModelInputs.options). */
  options?: TechniqueOptions;
  /**
   * A throttle's cost: the highest throttle (percent), the rounds run throttled, and the guest's
   * speed over pre-copy relative to unthrottled (1 = no cost; the report's
   * throttle.speedDuringPrecopy). Present when options.throttle is.
   */
  throttle?: { peakPercent: number; throttledRounds: number; guestSpeed: number };
  /** Encodings: the compression setting the model expects in use (null: none), and the pages' bytes per second it gives. */
  compression?: { codec: string | null; pageRateBps: number };
}

/** A technique chosen for an objective, and why (for `--mode auto` and the report). */
export interface Choice {
  objective: Objective;
  technique: Technique;
  /** Hybrid: the rounds before the switch. */
  postcopyAfterRounds?: number;
  /** One sentence a person reads in the report. */
  why: string;
  predictions: Prediction[];
}
