/**
 * `livemig compare` results for tests of its tables, figures and report, without running a
 * migration: shape-correct MigrationReports (their structure copied from a real
 * `livemig demo --json` report) whose numbers follow a crude model of each technique, with a
 * seeded jitter so repeats differ. Not a model to believe: only something with the shape and
 * the spread of real results.
 *
 *   compareFixture()                         2 links × 2 workloads × 4 techniques × 2 repeats, one failure
 *   compareFixture({ allFailed: true })      every cell failed
 *   cellFixture({ technique, totalMs, … })   one hand-made cell (scores tests)
 */
import { REPORT_SCHEMA, type MigrationReport, type PostcopyReport, type RoundReport } from '@livemig/shared/report';
import type { DirtyRateMeasurement } from '@livemig/shared/vm';
import type { LinkEstimate, Prediction, Technique } from '@livemig/shared/predict';
import {
  COMPARE_SCHEMA,
  type CellResult,
  type CompareResults,
  type LinkCase,
  type ProbeSample,
  type TechniqueName,
  type WorkloadCase,
} from '../../cli/compare/results.ts';

const MiB = 1 << 20;
const PAGE = 4096;
/** Bytes a page takes on the wire (payload and its header), as the demo's report shows. */
const PAGE_ON_WIRE = 4101;
const T0 = Date.parse('2026-12-02T10:00:00.000Z');

/** A seeded PRNG (mulberry32): the same fixture every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export const FIXTURE_WORKLOADS: WorkloadCase[] = [
  { name: 'hotset 20 MB/s', workload: 'hotset:wss=16MiB,rate=5000', memoryBytes: 64 * MiB, init: 'random' },
  { name: 'kv probed', workload: 'kv:keys=65536', memoryBytes: 16 * MiB, init: 'random', probeIntervalMs: 2 },
];

export const FIXTURE_LINKS: LinkCase[] = [
  { name: 'loopback', kind: 'loopback', maxBandwidthBps: null },
  { name: 'loopback 100mbit', kind: 'loopback', maxBandwidthBps: 12.5e6 },
];

export const FIXTURE_TECHNIQUES: TechniqueName[] = ['precopy', 'postcopy', 'hybrid', 'auto:downtime'];

/** What each link and workload measures as before a migration. */
const LINK_BPS: Record<string, number> = { loopback: 400e6, 'loopback 100mbit': 12.4e6 };
const LINK_RTT: Record<string, number> = { loopback: 0.08, 'loopback 100mbit': 0.2 };
const DIRTY_MBPS: Record<string, number> = { 'hotset 20 MB/s': 20, 'kv probed': 2 };

export interface FixtureOptions {
  /** Every cell failed (no report has times). @default false */
  allFailed?: boolean;
  /** The run was interrupted after this many cells. @default all */
  cells?: number;
  /** Post-copy reports carry faultLatencyHistogram. @default true */
  histogram?: boolean;
  /** Probed workloads carry probe samples. @default true */
  probed?: boolean;
}

/** A PostcopyReport with the histogram being added to it (issue 16). */
type PostcopyWithHistogram = PostcopyReport & { faultLatencyHistogram?: { bucketsUs: number[]; counts: number[] } };

interface Costs {
  totalMs: number;
  downtimeMs: number;
  wireBytes: number;
  setupMs: number;
  rounds: RoundReport[];
  postcopyMs: number;
}

/** A crude cost model per technique: what the fixture's reports and predictions are made of. */
function costs(
  technique: Technique,
  memoryBytes: number,
  bandwidthBps: number,
  dirtyMBps: number,
  jitter: () => number,
): Costs {
  const setupMs = 30 + 20 * jitter();
  const copyMs = (bytes: number): number => (bytes / bandwidthBps) * 1000;
  const dirtyBytes = (ms: number): number => Math.min(memoryBytes / 4, dirtyMBps * 1e6 * (ms / 1000));
  const rounds: RoundReport[] = [];
  let toSend = memoryBytes;
  const maxRounds = technique === 'precopy' ? 6 : technique === 'hybrid' ? 1 : 0;
  for (let i = 0; i < maxRounds; i++) {
    const ms = copyMs(toSend) * (0.95 + 0.1 * jitter());
    const dirtyAfter = Math.floor(dirtyBytes(ms) / PAGE);
    rounds.push({
      index: i,
      pages: Math.ceil(toSend / PAGE),
      bytes: (toSend / PAGE) * PAGE_ON_WIRE,
      ms,
      bandwidthBps: bandwidthBps,
      dirtyAfter,
    });
    toSend = dirtyAfter * PAGE;
    if (copyMs(toSend) < 30) break;
  }
  const roundsMs = rounds.reduce((sum, r) => sum + r.ms, 0);
  const roundBytes = rounds.reduce((sum, r) => sum + r.bytes, 0);
  if (technique === 'precopy') {
    const downtimeMs = 8 + copyMs(toSend) * (0.9 + 0.2 * jitter());
    return {
      totalMs: setupMs + roundsMs + downtimeMs,
      downtimeMs,
      wireBytes: roundBytes + (toSend / PAGE) * PAGE_ON_WIRE,
      setupMs,
      rounds,
      postcopyMs: 0,
    };
  }
  // post-copy (and hybrid after its round): a short pause, then the rest pushed or faulted in.
  const rest = technique === 'postcopy' ? memoryBytes : toSend;
  const downtimeMs = 6 + 6 * jitter();
  const postcopyMs = copyMs(rest) * (1 + 0.1 * jitter());
  return {
    totalMs: setupMs + roundsMs + downtimeMs + postcopyMs,
    downtimeMs,
    wireBytes: roundBytes + (rest / PAGE) * PAGE_ON_WIRE,
    setupMs,
    rounds,
    postcopyMs,
  };
}

function prediction(technique: Technique, c: Costs, bias: number): Prediction {
  return {
    technique,
    rounds: c.rounds.length,
    totalMs: c.totalMs * bias,
    downtimeMs: c.downtimeMs * (2 - bias),
    wireBytes: c.wireBytes * bias,
    switchover: technique === 'precopy' ? 'converged' : 'postcopy',
  };
}

/** The client's view: a request every interval from before the start to after the end; none answered while paused. */
function probeSamples(
  startMs: number,
  c: Costs,
  technique: Technique,
  intervalMs: number,
  jitter: () => number,
): ProbeSample[] {
  const pausedAt = startMs + c.setupMs + c.rounds.reduce((s, r) => s + r.ms, 0);
  const resumedAt = pausedAt + c.downtimeMs;
  const samples: ProbeSample[] = [];
  for (let t = startMs - 100; t < startMs + c.totalMs + 100; t += intervalMs) {
    const inPostcopy = technique !== 'precopy' && t >= resumedAt && t < resumedAt + c.postcopyMs;
    let latencyMs: number | null = 0.3 + 0.4 * jitter();
    if (t >= pausedAt && t < resumedAt) latencyMs = jitter() < 0.5 ? null : resumedAt - t + 0.5;
    else if (inPostcopy) latencyMs = 1 + 4 * jitter() ** 4;
    samples.push({ sentAt: t, latencyMs });
  }
  return samples;
}

/** One cell of the fixture: its spec, what was measured before, the prediction and the report. */
function makeCell(
  technique: TechniqueName,
  workload: WorkloadCase,
  link: LinkCase,
  repeat: number,
  index: number,
  options: FixtureOptions,
): CellResult {
  const jitter = prng(index * 7919 + 17);
  const bandwidthBps = LINK_BPS[link.name] ?? 100e6;
  const dirtyMBps = (DIRTY_MBPS[workload.name] ?? 10) * (0.9 + 0.2 * jitter());
  const chosen: Technique = technique.startsWith('auto:')
    ? link.maxBandwidthBps === null
      ? 'precopy'
      : 'postcopy'
    : (technique as Technique);
  const all = (['precopy', 'postcopy', 'hybrid'] as const).map((t) => ({
    t,
    c: costs(t, workload.memoryBytes, bandwidthBps, dirtyMBps, prng(index * 31 + t.length)),
  }));
  const c = costs(chosen, workload.memoryBytes, bandwidthBps, dirtyMBps, jitter);
  const startMs = T0 + index * 10_000;
  const id = `${link.name}/${workload.name}/${technique}/${repeat}`;
  const measuredLink: LinkEstimate = {
    bandwidthBps: bandwidthBps * (0.97 + 0.06 * jitter()),
    rttMs: LINK_RTT[link.name] ?? 1,
    source: 'idle calibration',
  };
  const dirtyRate: DirtyRateMeasurement = {
    dirtyRateMBps: dirtyMBps,
    standardErrorMBps: dirtyMBps * 0.05,
    pagesSampled: 256,
    pagesChanged: 40,
    windowMs: 1000,
    startedAt: startMs - 1500,
    memoryBytes: workload.memoryBytes,
  };
  const predictions = all.map(({ t, c: tc }) => prediction(t, tc, 0.85 + 0.3 * jitter()));
  const failed = options.allFailed === true || id === 'loopback 100mbit/hotset 20 MB/s/precopy/2';
  const report = failed
    ? failedReport(technique, workload, startMs, c)
    : completedReport(chosen, workload, startMs, c, options, jitter);
  const probed = workload.probeIntervalMs !== undefined && options.probed !== false;
  return {
    spec: { id, technique, workload, link, repeat },
    outcome: failed ? 'failed' : 'completed',
    error: failed
      ? {
          code: 'ERR_SWITCHOVER_TIMEOUT',
          message: 'the destination did not answer Ready within 3 s, "resumed" at the source',
        }
      : null,
    startedAt: new Date(startMs - 2000).toISOString(),
    wallMs: c.totalMs + 2500,
    measured: { dirtyRate, link: measuredLink },
    predicted: predictions.find((p) => p.technique === chosen)!,
    predictions,
    ...(technique.startsWith('auto:')
      ? {
          choice: {
            objective: 'downtime' as const,
            technique: chosen,
            why: `${chosen} has the least predicted downtime`,
            predictions,
          },
        }
      : {}),
    report,
    ...(probed && !failed
      ? {
          probe: {
            intervalMs: workload.probeIntervalMs!,
            samples: probeSamples(startMs, c, chosen, workload.probeIntervalMs!, jitter),
          },
        }
      : {}),
    baselineStepsPerSec: 1000 + 20 * jitter(),
  };
}

function baseReport(mode: Technique, workload: WorkloadCase, startMs: number, c: Costs): MigrationReport {
  const pages = workload.memoryBytes / PAGE;
  return {
    schema: REPORT_SCHEMA,
    migrationId: `00000000-0000-4000-8000-${String(startMs % 1e12).padStart(12, '0')}`,
    agents: { source: 'agent-a', dest: 'agent-b' },
    mode,
    outcome: 'completed',
    error: null,
    vm: {
      name: 'vm1',
      memoryBytes: workload.memoryBytes,
      pageSize: PAGE,
      workload: workload.workload,
      init: workload.init,
      seed: 1,
    },
    times: {
      startedAt: new Date(startMs).toISOString(),
      endedAt: new Date(startMs + c.totalMs).toISOString(),
      totalMs: c.totalMs,
      downtimeMs: c.downtimeMs,
      setupMs: c.setupMs,
      rttMs: 0.1,
      pausedAt: startMs + c.setupMs + c.rounds.reduce((s, r) => s + r.ms, 0),
    },
    bytes: { wire: Math.round(c.wireBytes), pagePayload: Math.round((c.wireBytes / PAGE_ON_WIRE) * PAGE) },
    pages: {
      total: pages,
      sent: Math.round(c.wireBytes / PAGE_ON_WIRE),
      zero: 0,
      resent: Math.max(0, Math.round(c.wireBytes / PAGE_ON_WIRE) - pages),
      faulted: 0,
    },
    rounds: c.rounds,
    verify: { sourceDigest: '4c7d29be3ee2da98', destDigest: '4c7d29be3ee2da98', match: true },
    network: null,
    security: null,
    switchover: {
      reason: mode === 'precopy' ? 'converged' : 'postcopy',
      expectedDowntimeMs: c.downtimeMs,
      downtimeLimitMs: 300,
      maxRounds: 30,
      maxBandwidthBps: null,
      switchoverTimeoutMs: 3000,
    },
    vmRunsOn: 'destination',
  };
}

function completedReport(
  mode: Technique,
  workload: WorkloadCase,
  startMs: number,
  c: Costs,
  options: FixtureOptions,
  jitter: () => number,
): MigrationReport {
  const report = baseReport(mode, workload, startMs, c);
  if (workload.probeIntervalMs !== undefined) {
    report.network = {
      downtimeMs: c.downtimeMs + 2,
      switchoverGapMs: c.downtimeMs + 1,
      lostReplies: 3,
      lostWrites: 0,
      requests: Math.round(c.totalMs / workload.probeIntervalMs),
      intervalMs: workload.probeIntervalMs,
      latencyMs: { p50: 0.5, p99: c.downtimeMs, max: c.downtimeMs + 1 },
    };
  }
  if (mode !== 'precopy') {
    const faults = 200 + Math.floor(300 * jitter());
    const postcopy: PostcopyWithHistogram = {
      absentAtSwitchover: Math.round(c.postcopyMs),
      pagesFetchedOnDemand: faults,
      pagesPushed: 1000,
      faults,
      faultLatencyMs: { p50: 0.4 + 0.2 * jitter(), p99: 3 + 2 * jitter(), max: 9 + 3 * jitter() },
      vcpuBlockedMs: faults * 0.6,
      stepsPerSecBefore: 1000,
      stepsPerSecDuring: 600 + 200 * jitter(),
      postcopyMs: c.postcopyMs,
      recoveries: 0,
    };
    if (options.histogram !== false) {
      const bucketsUs = [64, 128, 256, 512, 1024, 2048, 4096, 8192];
      postcopy.faultLatencyHistogram = {
        bucketsUs,
        counts: [2, 30, 90, 50, 15, 8, 4, 1].map((n) => Math.round(n * (0.5 + jitter()))),
      };
    }
    report.postcopy = postcopy;
    report.pages.faulted = faults;
  }
  return report;
}

function failedReport(technique: TechniqueName, workload: WorkloadCase, startMs: number, c: Costs): MigrationReport {
  const report = baseReport(technique.startsWith('auto:') ? 'precopy' : (technique as Technique), workload, startMs, c);
  report.outcome = 'failed';
  report.error = { code: 'ERR_SWITCHOVER_TIMEOUT', message: 'the destination did not answer Ready within 3 s' };
  report.times.downtimeMs = null;
  report.times.downtimeNote = 'the VM paused but resumed on the source';
  report.verify = { sourceDigest: null, destDigest: null, match: null };
  report.vmRunsOn = 'source';
  return report;
}

/** The fixture run: 2 links × 2 workloads × 4 techniques (auto:downtime among them) × 2 repeats. */
export function compareFixture(options: FixtureOptions = {}): CompareResults {
  const cells: CellResult[] = [];
  let index = 0;
  for (const link of FIXTURE_LINKS) {
    for (const workload of FIXTURE_WORKLOADS) {
      for (let repeat = 1; repeat <= 2; repeat++) {
        for (const technique of FIXTURE_TECHNIQUES)
          cells.push(makeCell(technique, workload, link, repeat, index++, options));
      }
    }
  }
  const kept = cells.slice(0, options.cells ?? cells.length);
  return {
    schema: COMPARE_SCHEMA,
    startedAt: new Date(T0 - 5000).toISOString(),
    endedAt: new Date(T0 + index * 10_000).toISOString(),
    host: { cpus: 2, node: 'v20.19.0', root: false },
    matrix: { techniques: FIXTURE_TECHNIQUES, workloads: FIXTURE_WORKLOADS, links: FIXTURE_LINKS, repeat: 2 },
    skippedLinks: [{ name: 'wan', reason: 'the lab needs root (network namespaces, tc)' }],
    interrupted: kept.length < cells.length,
    cells: kept,
  };
}

/** What a hand-made cell measured; null: the cell failed (or, for downtime, never resumed). */
export interface CellNumbers {
  technique: TechniqueName;
  totalMs: number | null;
  downtimeMs?: number | null;
  wireBytes?: number | null;
  workload?: string;
  link?: string;
  repeat?: number;
  outcome?: CellResult['outcome'];
  /** The model's prediction (total, downtime); none when absent. */
  predicted?: { totalMs: number; downtimeMs: number; wireBytes?: number };
}

/**
 * One cell with exactly these numbers (scores and summary tests): a completed pre-copy-shaped
 * report, or a failed one when `outcome` says so or `totalMs` is null.
 */
export function cellFixture(n: CellNumbers): CellResult {
  const workload: WorkloadCase = { ...FIXTURE_WORKLOADS[0]!, name: n.workload ?? 'w' };
  const link: LinkCase = { ...FIXTURE_LINKS[0]!, name: n.link ?? 'l' };
  const repeat = n.repeat ?? 1;
  const outcome = n.outcome ?? (n.totalMs === null ? 'failed' : 'completed');
  const c: Costs = {
    totalMs: n.totalMs ?? 0,
    downtimeMs: n.downtimeMs ?? 0,
    wireBytes: n.wireBytes ?? 0,
    setupMs: 10,
    rounds: [],
    postcopyMs: 0,
  };
  const mode: Technique = n.technique.startsWith('auto:') ? 'precopy' : (n.technique as Technique);
  let report: MigrationReport | null = null;
  if (outcome === 'completed' || outcome === 'failed' || outcome === 'cancelled') {
    report = outcome === 'completed' ? baseReport(mode, workload, T0, c) : failedReport(n.technique, workload, T0, c);
    report.outcome = outcome;
    if (n.downtimeMs === null) report.times.downtimeMs = null;
    report.bytes.wire = n.wireBytes ?? 0;
  }
  const predicted: Prediction | null =
    n.predicted === undefined
      ? null
      : {
          technique: mode,
          rounds: 1,
          totalMs: n.predicted.totalMs,
          downtimeMs: n.predicted.downtimeMs,
          wireBytes: n.predicted.wireBytes ?? 0,
          switchover: 'converged',
        };
  return {
    spec: {
      id: `${link.name}/${workload.name}/${n.technique}/${repeat}`,
      technique: n.technique,
      workload,
      link,
      repeat,
    },
    outcome,
    error: outcome === 'completed' ? null : { code: 'ERR_TIMEOUT', message: 'it failed' },
    startedAt: new Date(T0).toISOString(),
    wallMs: 1000,
    measured: { dirtyRate: null, link: null },
    predicted,
    predictions: predicted === null ? null : [predicted],
    report,
  };
}

/** Results holding exactly `cells` (matrix derived from them). */
export function resultsOf(cells: CellResult[], overrides: Partial<CompareResults> = {}): CompareResults {
  const unique = <T>(xs: T[], key: (x: T) => string): T[] => [...new Map(xs.map((x) => [key(x), x])).values()];
  return {
    schema: COMPARE_SCHEMA,
    startedAt: new Date(T0).toISOString(),
    endedAt: new Date(T0 + 60_000).toISOString(),
    host: { cpus: 2, node: 'v20.19.0', root: false },
    matrix: {
      techniques: unique(
        cells.map((c) => c.spec.technique),
        (t) => t,
      ),
      workloads: unique(
        cells.map((c) => c.spec.workload),
        (w) => w.name,
      ),
      links: unique(
        cells.map((c) => c.spec.link),
        (l) => l.name,
      ),
      repeat: Math.max(1, ...cells.map((c) => c.spec.repeat)),
    },
    skippedLinks: [],
    interrupted: false,
    cells,
    ...overrides,
  };
}
