/**
 * `npm run bench -- network`: issue 7's benchmark — what a client of the VM's service sees of a
 * migration, next to the VM's own downtime. A 64 MiB kv VM (random memory) is migrated while a
 * probe sends a PUT of a distinct key every millisecond to its address and, afterwards, reads
 * every acknowledged PUT back. Two setups:
 *
 * - loopback: two agent processes on this host; the VM's address is a loopback ip:port that the
 *   source releases and the destination binds (address mode `loopback`);
 * - lan: the lab's `lan` profile (network namespaces, 1 Gbit/s); the VM has its own IP on a
 *   macvlan, moved with a gratuitous ARP (address mode `macvlan`), probed from the controller.
 *   Needs root: elsewhere the lan cells are recorded as skipped, with the reason.
 *
 * Per run: VM downtime (report.times.downtimeMs: source pause → destination resume), network
 * downtime (longest reply gap over the whole probe window), switchover gap (longest reply gap
 * overlapping the pause → resume window), their excess over the VM downtime, lost replies, lost
 * writes (must be 0: the bench throws otherwise), probe latency. Rows show the median and max per
 * cell; every run's figures are stored under `runs` in bench/results/network.json.
 *
 * Environment: LIVEMIG_BENCH_NETWORK_RUNS (loopback runs per mode, default 5),
 * LIVEMIG_BENCH_NETWORK_LAN_RUNS (lan runs per mode, default 3; 0 = no lan),
 * LIVEMIG_BENCH_NETWORK_MODES (comma list, default precopy,postcopy,hybrid; hybrid switches to
 * post-copy after one pre-copy round).
 */
import dgram from 'node:dgram';
import { parseHostPort } from '@livemig/shared';
import { ControlClient, type MigrateParams } from '@livemig/shared/control';
import { downtimeOf, type MigrationMode, type MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { withAgentPair } from '../cli/agent-process.ts';
import { followMigration } from '../cli/follow-migration.ts';
import { withLabMigration } from '../cli/lab/lab-migration.ts';
import { PROFILES } from '../cli/lab/profiles.ts';
import { labUnavailable } from '../cli/lab/topology.ts';
import { succeeds } from '../cli/lab/sh.ts';
import { networkSection, startProbe } from '../cli/probe/during.ts';
import type { ProbeResult } from '../cli/probe/probe.ts';
import { median, ratioRow, type BenchResult, type BenchRow, type BenchSection } from './harness.ts';
import { MIGRATION_MODES } from '@livemig/shared/protocol';

const LOOPBACK_RUNS = Number(process.env.LIVEMIG_BENCH_NETWORK_RUNS ?? 5);
const LAN_RUNS = Number(process.env.LIVEMIG_BENCH_NETWORK_LAN_RUNS ?? 3);
const MODES = (process.env.LIVEMIG_BENCH_NETWORK_MODES ?? 'precopy,postcopy,hybrid')
  .split(',')
  .map((s) => s.trim()) as MigrationMode[];
for (const mode of MODES) {
  if (!(MIGRATION_MODES as readonly string[]).includes(mode)) throw new Error(`network bench: unknown mode ${mode}`);
}
const MEMORY = '64MiB';
/** Hybrid switches to post-copy after one pre-copy round; the others use the defaults. */
const PARAMS: Record<MigrationMode, MigrateParams> = { precopy: {}, postcopy: {}, hybrid: { postcopyAfterRounds: 1 } };
const PROBE_INTERVAL_MS = 1;
/** What moving the VM's address may cost on top of the VM's downtime (issue 7). */
const GOAL_EXCESS_MS = 5;
/** The kv service's UDP port on the lab link (the address itself is the lab's). */
const LAN_SERVICE_PORT = 7700;

type Where = 'loopback' | 'lan';

/** One migration's figures, as stored in network.json. */
export interface NetworkRun {
  where: Where;
  mode: MigrationMode;
  run: number;
  vmDowntimeMs: number;
  networkDowntimeMs: number;
  /** NaN when the report had no switchover time to place the window. */
  switchoverGapMs: number;
  /** switchoverGapMs − vmDowntimeMs: what moving the VM's address cost a client. */
  switchoverExcessMs: number;
  /** networkDowntimeMs − vmDowntimeMs: also counts service slowdowns during the copy rounds. */
  networkExcessMs: number;
  lostReplies: number;
  requests: number;
  lostWrites: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  addressMode: string;
  totalMs: number;
  rounds: number;
  /** Post-copy and hybrid: vCPU faults on absent pages at the destination, their latency p99, blocked time. */
  postcopyFaults?: number;
  faultLatencyP99Ms?: number;
  vcpuBlockedMs?: number;
  /** Loopback only (the lab runner keeps its probe's timeline): where the switchover gap sits. */
  gap?: GapPlacement;
}

interface NetworkBenchResult extends BenchResult {
  runs: NetworkRun[];
  skipped: { where: Where; reason: string }[];
}

/** A loopback UDP port that was free a moment ago (bound, then closed). */
async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** The report must be a completed, verified migration with a network section. */
function checked(report: MigrationReport, label: string, logs: () => string): MigrationReport {
  if (report.outcome !== 'completed' || !report.verify.match || !report.network) {
    throw new Error(
      `network bench ${label}: ${report.outcome}, verify ${report.verify.match}, ` +
        `network ${report.network ? 'present' : 'missing'}: ${JSON.stringify(report.error)}\n${logs()}`,
    );
  }
  return report;
}

/**
 * Where the switchover gap sits: its first edge relative to the source's pause, its last edge
 * relative to the destination's resume (both on the probe's clock). Negative start = the
 * replies stopped before the vCPU did; positive end = they resumed after the vCPU did.
 */
interface GapPlacement {
  startAfterPauseMs: number;
  endAfterResumeMs: number;
}

function placeGap(probe: ProbeResult, times: MigrationReport['times']): GapPlacement | undefined {
  if (times.pausedAt === undefined) return undefined;
  const pause = times.pausedAt - probe.timeOriginMs;
  if (times.downtimeMs === null) return undefined;
  const resume = pause + times.downtimeMs;
  const arrivals = probe.arrivalsMs;
  let best: GapPlacement | undefined;
  let longest = 0;
  // The same gap longestGapOverlapping() measures: the longest one overlapping pause → resume.
  for (let i = 1; i < arrivals.length; i++) {
    const start = arrivals[i - 1]!;
    const end = arrivals[i]!;
    if (end >= pause && start <= resume && end - start > longest) {
      longest = end - start;
      best = { startAfterPauseMs: start - pause, endAfterResumeMs: end - resume };
    }
  }
  return best;
}

/** One migration on loopback between fresh agent processes, the address moved by rebinding. */
async function loopbackOnce(
  mode: MigrationMode,
  seed: number,
): Promise<{ report: MigrationReport; placement: GapPlacement | undefined }> {
  return withAgentPair({}, async ({ dest, source }) => {
    const control = await ControlClient.connect(source.control);
    try {
      const address = `127.0.0.1:${await freeUdpPort()}`;
      await control.request('create-vm', {
        name: 'kv',
        memory: MEMORY,
        init: 'random',
        workload: 'kv',
        seed,
        nic: address,
      });
      const probe = startProbe({ target: parseHostPort(address), intervalMs: PROBE_INTERVAL_MS });
      let finished = false;
      try {
        await probe.answered;
        const { migrationId } = await control.request('migrate', {
          vm: 'kv',
          to: dest.listen,
          mode,
          params: PARAMS[mode],
        });
        const report = await followMigration(control, migrationId, { progress: false });
        finished = true;
        const probed = await probe.finish();
        const network = networkSection(probed, report);
        return {
          report: checked({ ...report, network }, `loopback ${mode}`, () => source.logs() + dest.logs()),
          placement: placeGap(probed, report.times),
        };
      } finally {
        // A failed run must not leave the probe sending for ever.
        if (!finished) await probe.finish().catch(() => {});
      }
    } finally {
      control.close();
    }
  });
}

/** One migration across a fresh lab shaped to `lan`, the address moved by macvlan. */
async function lanOnce(mode: MigrationMode, seed: number): Promise<MigrationReport> {
  // The NIC address is assigned by the lab (its own IP on the lab link); this one is a placeholder.
  const spec = parseVmSpec({
    memory: MEMORY,
    init: 'random',
    workload: 'kv',
    seed,
    nic: `10.0.0.1:${LAN_SERVICE_PORT}`,
  });
  return withLabMigration(
    {
      profile: PROFILES.lan!,
      spec,
      mode,
      params: PARAMS[mode],
      service: { port: LAN_SERVICE_PORT, probeIntervalMs: PROBE_INTERVAL_MS },
    },
    async ({ report, source, dest }) => checked(report, `lan ${mode}`, () => source.logs() + dest.logs()),
  );
}

function record(
  where: Where,
  mode: MigrationMode,
  run: number,
  report: MigrationReport,
  placement?: GapPlacement,
): NetworkRun {
  const network = report.network!;
  const vm = downtimeOf(report);
  const gap = network.switchoverGapMs ?? NaN;
  const result: NetworkRun = {
    where,
    mode,
    run,
    vmDowntimeMs: vm,
    networkDowntimeMs: network.downtimeMs,
    switchoverGapMs: gap,
    switchoverExcessMs: gap - vm,
    networkExcessMs: network.downtimeMs - vm,
    lostReplies: network.lostReplies,
    requests: network.requests ?? NaN,
    lostWrites: network.lostWrites,
    latencyP50Ms: network.latencyMs?.p50 ?? NaN,
    latencyP99Ms: network.latencyMs?.p99 ?? NaN,
    addressMode: network.addressMode ?? 'unknown',
    totalMs: report.times.totalMs,
    rounds: report.rounds.length,
    ...(report.postcopy
      ? {
          postcopyFaults: report.postcopy.faults,
          faultLatencyP99Ms: report.postcopy.faultLatencyMs?.p99 ?? NaN,
          vcpuBlockedMs: report.postcopy.vcpuBlockedMs,
        }
      : {}),
    ...(placement ? { gap: placement } : {}),
  };
  const f = (v: number): string => v.toFixed(1);
  process.stderr.write(
    `  ${where} ${mode} #${run}: VM downtime ${f(vm)} ms, network downtime ${f(result.networkDowntimeMs)} ms, ` +
      `switchover gap ${f(gap)} ms, ${result.lostReplies}/${result.requests} replies lost, ` +
      `${result.lostWrites} writes lost, p50/p99 ${f(result.latencyP50Ms)}/${f(result.latencyP99Ms)} ms` +
      (result.postcopyFaults === undefined
        ? ''
        : `; ${result.postcopyFaults} faults, p99 ${f(result.faultLatencyP99Ms ?? NaN)} ms`) +
      (placement
        ? `; gap from pause${sign(placement.startAfterPauseMs)} to resume${sign(placement.endAfterResumeMs)}`
        : '') +
      '\n',
  );
  if (result.lostWrites !== 0) {
    throw new Error(
      `network bench ${where} ${mode} run ${run}: ${result.lostWrites} acknowledged writes were lost — ` +
        'a migration must never lose an acknowledged write',
    );
  }
  return result;
}

/** " + 3.2 ms" / " − 1.0 ms": an offset from an event. */
const sign = (ms: number): string => ` ${ms < 0 ? '−' : '+'} ${Math.abs(ms).toFixed(1)} ms`;

const max = (values: readonly number[]): number => Math.max(...values);

/** The rows of one (setup, mode) cell. */
function cellRows(runs: readonly NetworkRun[]): BenchRow[] {
  const { where, mode } = runs[0]!;
  const label = `${where} ${mode}`;
  const n = runs.length;
  const of = (f: (r: NetworkRun) => number): number[] => runs.map(f);
  const vm = of((r) => r.vmDowntimeMs);
  const net = of((r) => r.networkDowntimeMs);
  const gap = of((r) => r.switchoverGapMs);
  const swExcess = of((r) => r.switchoverExcessMs);
  const netExcess = of((r) => r.networkExcessMs);
  const baseline = { name: `VM downtime, median of the same ${n} runs`, value: median(vm), unit: 'ms' };
  const fmt = (v: number): string => `${v.toFixed(1)} ms`;
  const goal = `≤ ${GOAL_EXCESS_MS} ms`;
  return [
    { name: `${label}: VM downtime, median of ${n} (max ${fmt(max(vm))})`, value: median(vm), unit: 'ms' },
    ratioRow(
      { name: `${label}: switchover gap, median of ${n} (max ${fmt(max(gap))})`, value: median(gap), unit: 'ms' },
      baseline,
    ),
    ratioRow(
      { name: `${label}: network downtime, median of ${n} (max ${fmt(max(net))})`, value: median(net), unit: 'ms' },
      baseline,
    ),
    {
      name: `${label}: switchover gap − VM downtime (moving the address), median of ${n}`,
      value: median(swExcess),
      unit: 'ms',
      goal,
      met: median(swExcess) <= GOAL_EXCESS_MS,
    },
    {
      name: `${label}: switchover gap − VM downtime (moving the address), max of ${n}`,
      value: max(swExcess),
      unit: 'ms',
      goal,
      met: max(swExcess) <= GOAL_EXCESS_MS,
    },
    {
      name: `${label}: network downtime − VM downtime, median of ${n}`,
      value: median(netExcess),
      unit: 'ms',
      goal,
      met: median(netExcess) <= GOAL_EXCESS_MS,
    },
    {
      name: `${label}: network downtime − VM downtime, max of ${n}`,
      value: max(netExcess),
      unit: 'ms',
      goal,
      met: max(netExcess) <= GOAL_EXCESS_MS,
    },
    ...placementRows(label, runs),
    {
      name: `${label}: probe reply latency p99, median of ${n} (p50 ${fmt(median(of((r) => r.latencyP50Ms)))})`,
      value: median(of((r) => r.latencyP99Ms)),
      unit: 'ms',
    },
    {
      name: `${label}: lost replies, median of ${n} (max ${max(of((r) => r.lostReplies))}; ~${Math.round(median(of((r) => r.requests)))} requests per run)`,
      value: median(of((r) => r.lostReplies)),
      unit: '',
    },
  ];
}

/**
 * Loopback: where the switchover gap sat — how long before the source's pause the replies
 * stopped, and how long after the destination's resume the first one came (the address moving,
 * plus the first requests served there). Without a probe timeline (lan) there are none.
 */
function placementRows(label: string, runs: readonly NetworkRun[]): BenchRow[] {
  const placed = runs.flatMap((r) => (r.gap ? [r.gap] : []));
  if (placed.length !== runs.length) return [];
  const before = placed.map((g) => -g.startAfterPauseMs);
  const after = placed.map((g) => g.endAfterResumeMs);
  const n = placed.length;
  return [
    {
      name: `${label}: of which, replies stopped before the source's pause, median of ${n} (max ${max(before).toFixed(1)} ms)`,
      value: median(before),
      unit: 'ms',
    },
    {
      name: `${label}: of which, first reply after the destination's resume, median of ${n} (max ${max(after).toFixed(1)} ms)`,
      value: median(after),
      unit: 'ms',
    },
  ];
}

/** Notes that say, from this run's figures, what the excess over the VM downtime is made of. */
function explainNotes(cells: readonly NetworkRun[][]): string[] {
  const notes: string[] = [];
  for (const runs of cells) {
    const label = `${runs[0]!.where} ${runs[0]!.mode}`;
    const placed = runs.flatMap((r) => (r.gap ? [r.gap] : []));
    const m = (f: (r: NetworkRun) => number): string => `${median(runs.map(f)).toFixed(1)} ms`;
    const parts: string[] = [];
    if (placed.length) {
      parts.push(
        `replies stopped ${median(placed.map((g) => -g.startAfterPauseMs)).toFixed(1)} ms before the pause and ` +
          `came back ${median(placed.map((g) => g.endAfterResumeMs)).toFixed(1)} ms after the resume (medians)`,
      );
    }
    const faulted = runs.filter((r) => r.postcopyFaults !== undefined);
    if (faulted.length) {
      const faults = median(faulted.map((r) => r.postcopyFaults!));
      const blocked = median(faulted.map((r) => r.vcpuBlockedMs ?? NaN));
      parts.push(
        faults > 0
          ? `the destination’s vCPU faulted on absent pages (kv table pages its first requests touch) ${faults}× ` +
              `(median) and was blocked ${blocked.toFixed(1)} ms in all, each fault a round trip to the source ` +
              'behind the background push'
          : `the destination’s vCPU mostly did not fault (median 0 faults, ${blocked.toFixed(1)} ms blocked): ` +
              'the delay after the resume is its main thread receiving the background push',
      );
    }
    parts.push(`the service’s p99 reply latency over the whole window was ${m((r) => r.latencyP99Ms)}`);
    notes.push(`${label}: ${parts.join('; ')}.`);
  }
  notes.push(
    'Reading it: the part before the pause is the source’s main thread busy with the last pre-copy round and the ' +
      'switchover (its NIC waits for it); the part after the resume is the destination taking the address (it binds the ' +
      'port, or brings its macvlan up, right after the vCPU resumes) and then serving the requests queued meanwhile — ' +
      'in post-copy and hybrid while its main thread also takes in the background push, and each request can fault. Network downtime − VM downtime also counts slow stretches ' +
      'during the copy rounds, when both agents and the vCPUs compete for the 2 cores.',
  );
  return notes;
}

/** Notes that say, from this run's figures, which goal held and why the other did not. */
function goalNotes(cells: readonly NetworkRun[][]): string[] {
  const verdict = (pick: (r: NetworkRun) => number): { held: string[]; missed: string[] } => {
    const held: string[] = [];
    const missed: string[] = [];
    for (const runs of cells) {
      const worst = max(runs.map(pick));
      const label = `${runs[0]!.where} ${runs[0]!.mode}`;
      (worst <= GOAL_EXCESS_MS ? held : missed).push(`${label} (max ${worst.toFixed(1)} ms)`);
    }
    return { held, missed };
  };
  const list = (xs: string[]): string => (xs.length ? xs.join(', ') : 'none');
  const sw = verdict((r) => r.switchoverExcessMs);
  const net = verdict((r) => r.networkExcessMs);
  return [
    `Goal as the issue means it — moving the address costs ≤ ${GOAL_EXCESS_MS} ms, i.e. switchover gap − VM downtime ≤ ${GOAL_EXCESS_MS} ms in every run: ` +
      `held in ${list(sw.held)}; not held in ${list(sw.missed)}.`,
    `Literal goal — network downtime (longest gap over the whole probe window) ≤ VM downtime + ${GOAL_EXCESS_MS} ms in every run: ` +
      `held in ${list(net.held)}; not held in ${list(net.missed)}.`,
  ];
}

const section: BenchSection = {
  id: 'network',
  title: 'Network downtime next to VM downtime (kv VM, loopback and lan)',
  description:
    '`npm run bench -- network` (bench/network.bench.ts): a 64 MiB random kv VM migrated while a client PUTs a ' +
    `distinct key to its address every ${PROBE_INTERVAL_MS} ms and reads every acknowledged PUT back; ` +
    `${LOOPBACK_RUNS} runs per mode on loopback (address moved by rebinding the loopback port), ` +
    `${LAN_RUNS} on the lab's lan profile (own IP on a macvlan, gratuitous ARP); medians and maxima, ` +
    'each next to the VM downtime of the same runs. Goal (issue 7): network downtime ≤ VM downtime + 5 ms.',
  async run() {
    const runs: NetworkRun[] = [];
    const cells: NetworkRun[][] = [];
    const skipped: NetworkBenchResult['skipped'] = [];
    const notes: string[] = [];
    let seed = 1;
    for (const mode of MODES) {
      const cell: NetworkRun[] = [];
      for (let i = 1; i <= LOOPBACK_RUNS; i++) {
        const { report, placement } = await loopbackOnce(mode, seed++);
        cell.push(record('loopback', mode, i, report, placement));
      }
      if (cell.length) cells.push(cell);
    }
    const why =
      LAN_RUNS <= 0
        ? 'LIVEMIG_BENCH_NETWORK_LAN_RUNS=0'
        : (labUnavailable() ?? (succeeds('arping', '-V') ? undefined : 'arping (iputils-arping) is not installed'));
    if (why) {
      process.stderr.write(`bench network: lan cells skipped: ${why}\n`);
      skipped.push({ where: 'lan', reason: why });
      notes.push(`lan rows skipped (${MODES.join(', ')}): ${why}.`);
    } else {
      for (const mode of MODES) {
        const cell: NetworkRun[] = [];
        for (let i = 1; i <= LAN_RUNS; i++) cell.push(record('lan', mode, i, await lanOnce(mode, seed++)));
        if (cell.length) cells.push(cell);
      }
    }
    for (const cell of cells) runs.push(...cell);
    const rows: BenchRow[] = cells.flatMap(cellRows);
    rows.push({
      name: `acknowledged writes lost, all ${runs.length} runs (the bench throws on any)`,
      value: runs.reduce((sum, r) => sum + r.lostWrites, 0),
      unit: '',
      goal: '= 0',
      met: runs.every((r) => r.lostWrites === 0),
    });
    notes.push(
      ...goalNotes(cells),
      'VM downtime: source vCPU pause → destination vCPU resume, as the report measures it. Switchover gap: the longest ' +
        'gap between replies that overlaps that window, on the probe’s clock (one machine, one clock) — what moving the VM ' +
        'and its address cost a client. Network downtime: the longest gap over the whole probe window, which also counts ' +
        'replies that came late because the VM was slow to answer while its memory was being copied.',
      ...explainNotes(cells),
      'This machine has 2 cores, shared by both agents (each moves its NIC’s datagrams on its main thread, the one that ' +
        'also sends or receives pages), both vCPU workers, the probe and the kernel’s receive path: any of them can wait ' +
        'for a core, and a 1 ms probe sees it. The gap also exceeds the VM downtime by up to one probe interval by construction.',
      'lan has no before/after split: the lab runner (cli/lab/lab-migration.ts) keeps its probe’s timeline to itself. ' +
        'There the address moves by taking the source’s macvlan down and the destination’s up, with a gratuitous ARP.',
      `Per-run figures (VM/network downtime, switchover gap, lost replies and writes, latency, address mode) are in ` +
        `bench/results/network.json under "runs"; address modes seen: ${[...new Set(runs.map((r) => `${r.where} → ${r.addressMode}`))].join(', ')}.`,
    );
    const result: NetworkBenchResult = { rows, notes, runs, skipped };
    return result;
  },
};

export default section;
