/**
 * What `livemig compare` writes to results.json — a contract between the runner (run.ts), the
 * tables (summary.ts) and the figures (figures.ts, report-html.ts): every cell's spec, what was
 * measured before it ran, what the model predicted, and the migration's report, unabridged.
 * Times ms, sizes bytes, rates bytes per second (MB = 10^6 bytes where a label says MB/s).
 */
import type { DirtyRateMeasurement } from '@livemig/shared/vm';
import type { MigrationReport } from '@livemig/shared/report';
import type { Choice, LinkEstimate, PageFigures, Prediction } from '@livemig/shared/predict';

export const COMPARE_SCHEMA = 'livemig.compare/1';

/**
 * A technique as the matrix names it: a fixed mode, a fixed mode with engine options
 * (`precopy+compress`, `precopy+auto-converge`, `hybrid+dirty-limit=20MB/s`: the syntax of
 * shared/src/predict/options.ts; a pure post-copy takes none), or `auto` for an objective.
 */
export type TechniqueName =
  | 'precopy'
  | 'postcopy'
  | 'hybrid'
  | 'auto:downtime'
  | 'auto:total-time'
  | 'auto:bytes'
  | `${'precopy' | 'hybrid'}+${string}`;

/** A guest to migrate: one VM spec. */
export interface WorkloadCase {
  /** Short label used in tables and legends, e.g. "hotset 80 MB/s". */
  name: string;
  /** The workload spec string (`livemig create-vm --workload`), e.g. "hotset:wss=16MiB,rate=20000". */
  workload: string;
  memoryBytes: number;
  /** The VM's --init: random, zero, realistic, mixed:… (vm/init.ts). */
  init: string;
  /** A kv VM probed by a client every `probeIntervalMs` during the migration (the client's view). */
  probeIntervalMs?: number;
}

/** A link: loopback (optionally capped by the engine's --max-bandwidth) or a lab profile (root). */
export interface LinkCase {
  name: string;
  kind: 'loopback' | 'lab';
  /** The lab profile's name (lan, wan, constrained) when kind is lab. */
  profile?: string;
  /** --max-bandwidth for the migration (the way to sweep bandwidth on loopback), or null. */
  maxBandwidthBps: number | null;
}

export interface CellSpec {
  /** Stable id, e.g. "loopback/hotset-80/precopy/1". */
  id: string;
  technique: TechniqueName;
  workload: WorkloadCase;
  link: LinkCase;
  /** 1-based repeat number. */
  repeat: number;
}

/** One reply the probe client saw (or did not). */
export interface ProbeSample {
  /** When the request left, ms since the epoch. */
  sentAt: number;
  /** Request → reply, ms; null: no reply came. */
  latencyMs: number | null;
}

export interface CellResult {
  spec: CellSpec;
  /** 'error': the cell could not run (e.g. the lab would not build); 'skipped': not run, `error` says why. */
  outcome: 'completed' | 'failed' | 'cancelled' | 'error' | 'skipped';
  error: { code: string; message: string } | null;
  /** ISO 8601, and the cell's wall time (agents' start and stop included). */
  startedAt: string;
  wallMs: number;
  /** What was measured before the migration started: the inputs of the prediction. */
  measured: { dirtyRate: DirtyRateMeasurement | null; link: LinkEstimate | null };
  /** The model's prediction for this cell's technique (for auto: the technique it chose), or null. */
  predicted: Prediction | null;
  /** The model's predictions for every technique, and (auto) its choice. */
  predictions: Prediction[] | null;
  choice?: Choice;
  /** The migration's report, unabridged (null when none came). */
  report: MigrationReport | null;
  /** Probed cells: every request of the client during the migration. */
  probe?: { intervalMs: number; samples: ProbeSample[] };
  /** Guest steps/s of the same VM before the migration (the unmigrated rate, for slowdown). */
  baselineStepsPerSec?: number;
  /** What the model took the VM's pages to be for the encodings (sampled before the migration). */
  pages?: PageFigures;
}

export interface CompareResults {
  schema: typeof COMPARE_SCHEMA;
  startedAt: string;
  endedAt: string;
  /** The command line's options and the host it ran on (cores, Node, root or not). */
  host: { cpus: number; node: string; root: boolean };
  /** The matrix as run (after defaults), and lab links skipped with why. */
  matrix: { techniques: TechniqueName[]; workloads: WorkloadCase[]; links: LinkCase[]; repeat: number };
  skippedLinks: { name: string; reason: string }[];
  /** Ctrl-C: the run stopped early; the cells done are all here. */
  interrupted: boolean;
  cells: CellResult[];
}
