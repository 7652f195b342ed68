/**
 * `npm run bench -- storage`: disk migration (issue 15). A VM of 256 MiB (zero boot) with a
 * 4 GiB disk of which 512 MiB is allocated, running the `disk` workload at a few write rates,
 * migrated with each storage mode across the lab's `lan` and `wan` profiles (network
 * namespaces, tbf, nftables loss, the userspace delay relay where the kernel has no netem — as
 * the links section does), each total time next to a plain bulk copy of the allocated bytes over
 * the same link in the same run (bench/storage-bulk-peer.ts: one TCP connection, no protocol).
 *
 * The fill. The workload's working set is 1 GiB (twice the fill): the agent that boots the VM
 * (bench/storage-agent.ts, `livemig agent` with one addition) first runs the guest at full speed
 * until 512 MiB of the disk is written — the guest's own self-describing blocks through its
 * request ring — and only then starts it at its paced rate. Later writes land anywhere in the
 * 1 GiB, on an allocated block or a new one.
 *
 * One lab per profile, shaped and measured once (more than 20% off the profile: built and
 * measured again, twice at most), the bulk copy measured on it first. Then one VM per write rate
 * on fresh agents (phasesFor): it migrates from one agent to the other and back with each of its
 * storage modes in turn, settling SETTLE_MS before each; memory is pre-copied every time, so the
 * storage mode is the variable. `shared` comes last: a third agent on the other side, on the
 * VM's disk directory (as two hosts mount one share), takes the VM without its disk moving.
 *
 * Without root (no namespaces) every phase runs on loopback instead, and the notes say why.
 * Environment: LIVEMIG_BENCH_STORAGE_PROFILES (default lan,wan; `loopback` too),
 * LIVEMIG_BENCH_STORAGE_FILL (allocated bytes, default 512MiB; 64MiB for a quick run),
 * LIVEMIG_BENCH_STORAGE_FULL=1 (every rate with copy, mirror and postcopy on every profile:
 * several minutes more).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseHostPort, parseSize } from '@livemig/shared';
import { ControlClient, type CommandArgs } from '@livemig/shared/control';
import { downtimeOf, type MigrationReport, type StorageMode, type WriteLatency } from '@livemig/shared/report';
import { REPO_ROOT, startAgentProcess, type AgentProcess } from '../cli/agent-process.ts';
import { followMigration } from '../cli/follow-migration.ts';
import { startDelayRelay, type DelayRelay } from '../cli/lab/delay-relay.ts';
import { checkProfile, measureLink, type LinkMeasurement } from '../cli/lab/measure.ts';
import { PROFILES, type LinkProfile } from '../cli/lab/profiles.ts';
import { shapeLab, type ShapingMechanisms } from '../cli/lab/shape.ts';
import { Lab, labUnavailable } from '../cli/lab/topology.ts';
import { type BenchRow, type BenchSection } from './harness.ts';

const MiB = 2 ** 20;
const FILL = parseSize(process.env.LIVEMIG_BENCH_STORAGE_FILL ?? '512MiB');
const PROFILE_NAMES = (process.env.LIVEMIG_BENCH_STORAGE_PROFILES ?? 'lan,wan')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const FULL = process.env.LIVEMIG_BENCH_STORAGE_FULL === '1';
const MEMORY = '256MiB';
const DISK = '4GiB';
/** Read share of the guest's requests, percent: a write rate w is rate = w / 0.8 requests a second. */
const READ_SHARE = 20;
const SETTLE_MS = 1000;
/** The switchover timeout a shared migration gets a second time when the default one cut it short. */
const SHARED_TIMEOUT_MS = 120_000;
/** Copy at the low rate, against the bulk copy; mirror and postcopy on wan, downtime. */
const COPY_GOAL = 1.15;
const DOWNTIME_GOAL_MS = 1000;

interface Rate {
  name: 'idle' | 'low' | 'high';
  /** Guest writes a second (4 KiB each). */
  writes: number;
}
const RATES: readonly Rate[] = [
  { name: 'idle', writes: 20 },
  { name: 'low', writes: 200 },
  { name: 'high', writes: 2000 },
];
const workload = (rate: Rate): string =>
  `disk:wss=${(2 * FILL) / MiB}MiB,rate=${(rate.writes * 100) / (100 - READ_SHARE)},rw=${READ_SHARE}`;

/** One VM on fresh agents: its rate, the storage modes it migrates with in turn, and whether `shared` follows. */
interface Phase {
  rate: Rate;
  modes: StorageMode[];
  shared: boolean;
}

/**
 * What runs on a profile, to keep the default run near ten minutes: copy, mirror, postcopy and
 * shared at the low rate; at the high rate copy, mirror and postcopy on lan, mirror alone on wan
 * (its stress case; copy there, at 8 MB/s of writes on a 12.5 MB/s link, would take minutes).
 * LIVEMIG_BENCH_STORAGE_FULL: every rate (idle too) with copy, mirror and postcopy everywhere.
 */
function phasesFor(profile: string): Phase[] {
  const moving: StorageMode[] = ['copy', 'mirror', 'postcopy'];
  const [, low, high] = RATES as [Rate, Rate, Rate];
  if (FULL) return RATES.map((rate) => ({ rate, modes: moving, shared: rate === low }));
  return [
    { rate: low, modes: moving, shared: true },
    { rate: high, modes: profile === 'wan' ? ['mirror'] : moving, shared: false },
  ];
}

type Side = 'source' | 'dest';
const other = (side: Side): Side => (side === 'source' ? 'dest' : 'source');

/** Where the agents run: a shaped lab, or loopback. */
interface Link {
  name: string;
  host(side: Side): string;
  wrap(side: Side): string[];
  /** HOST:PORT that reaches `port` on `side` from the other side (through a delay relay when the lab has one). */
  path(side: Side, port: number): Promise<string>;
  /** How the lab was shaped and what it measured; undefined on loopback. */
  shaped?: { mechanisms: ShapingMechanisms; measured: LinkMeasurement; profile: LinkProfile };
  close(): Promise<void>;
}

const loopback: Link = {
  name: 'loopback',
  host: () => '127.0.0.1',
  wrap: () => [],
  path: async (_side, port) => `127.0.0.1:${port}`,
  close: async () => {},
};

/** A fresh lab shaped to `profile` and measured (checkProfile: built again when > 20% off, twice at most). */
async function openLab(profile: LinkProfile, refused: string[]): Promise<Link> {
  for (let attempt = 1; ; attempt++) {
    const lab = Lab.create(['source', 'dest']);
    const relays: DelayRelay[] = [];
    let relayed = false;
    const link: Link = {
      name: profile.name,
      host: (side) => lab.host(side).address,
      wrap: (side) => lab.wrap(side),
      path: async (side, port) => {
        const target = { host: lab.host(side).address, port };
        if (!relayed) return `${target.host}:${port}`;
        const relay = await startDelayRelay({ listenHost: lab.controllerAddress, target, oneWayMs: profile.rttMs / 2 });
        relays.push(relay);
        return relay.address;
      },
      close: async () => {
        for (const relay of relays) await relay.close();
        lab.destroy();
      },
    };
    try {
      const mechanisms = shapeLab(lab, profile);
      relayed = mechanisms.delay === 'relay';
      const measured = await measureLink(lab, 'source', 'dest', profile, async (port) => ({
        address: await link.path('dest', port),
        close: async () => {},
      }));
      checkProfile(measured, profile);
      return { ...link, shaped: { mechanisms, measured, profile } };
    } catch (error) {
      await link.close();
      const message = (error as Error).message;
      if (attempt === 3 || !message.startsWith('lab link is not what profile')) throw error;
      refused.push(message);
    }
  }
}

const PEER = new URL('./storage-bulk-peer.ts', import.meta.url).pathname;
const FILLER = new URL('./storage-agent.ts', import.meta.url).pathname;
const node = (script: string, ...args: string[]): string[] => [process.execPath, '--import', 'tsx', script, ...args];

/** A child process's first stdout line, parsed; rejects when it exits before writing one. */
function firstLine<T>(child: ChildProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (line) => resolve(JSON.parse(line) as T));
    child.once('exit', (code) => reject(new Error(`storage bench: child exited ${code} before its answer`)));
  });
}

/** The baseline: `bytes` from the source host to the destination host over one plain TCP connection, in ms. */
async function bulkCopyMs(link: Link, bytes: number): Promise<number> {
  const run = (side: Side, args: string[]): ChildProcess => {
    const [command, ...rest] = [...link.wrap(side), ...node(PEER, ...args)] as [string, ...string[]];
    return spawn(command, rest, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  };
  const sink = run('dest', ['sink', link.host('dest'), String(bytes)]);
  try {
    const { port } = await firstLine<{ port: number }>(sink);
    const pour = run('source', ['pour', await link.path('dest', port), String(bytes)]);
    const { ms } = await firstLine<{ ms: number }>(pour);
    return ms;
  } finally {
    sink.kill();
  }
}

/** One migration's figures, as the rows and notes need them. */
interface Measured {
  profile: string;
  rate: Rate;
  mode: StorageMode;
  report: MigrationReport;
  /** Set when the migration ran with a longer switchover timeout than the default. */
  switchoverTimeoutMs?: number;
  /** The VM's first migration: the write latency "before" it is mostly the fill pass's. */
  first: boolean;
  /** ms from the report until the agent the VM left had let go of its image (its lock file gone). */
  releasedMs?: number;
}

/** Ask `from` to migrate, follow it to its report. */
async function migrateVm(from: AgentProcess, args: CommandArgs<'migrate'>): Promise<MigrationReport> {
  const client = await ControlClient.connect(from.control);
  try {
    const { migrationId } = await client.request('migrate', args);
    return await followMigration(client, migrationId, { progress: false });
  } finally {
    client.close();
  }
}

/** Wait until `lockFile` is gone; ms it took. */
async function released(lockFile: string, timeoutMs = 120_000): Promise<number> {
  const t0 = performance.now();
  while (existsSync(lockFile)) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`storage bench: ${lockFile} still held`);
    await sleep(20);
  }
  return performance.now() - t0;
}

/** Wait until `agent` holds no VM "vm" but a retired record (a failed incoming one is discarded); ms it took. */
async function letGo(agent: AgentProcess, timeoutMs = 120_000): Promise<number> {
  const client = await ControlClient.connect(agent.control);
  const t0 = performance.now();
  try {
    for (;;) {
      const { vms } = await client.request('query-vms', {});
      if (!vms.some((vm) => vm.name === 'vm' && vm.state !== 'migrated')) return performance.now() - t0;
      if (performance.now() - t0 > timeoutMs) throw new Error(`storage bench: ${agent.control} still holds the VM`);
      await sleep(100);
    }
  } finally {
    client.close();
  }
}

const labelOf = (m: Pick<Measured, 'profile' | 'rate' | 'mode' | 'switchoverTimeoutMs'>): string =>
  `${m.profile} ${m.rate.name} (${m.rate.writes} writes/s) ${m.mode}` +
  (m.switchoverTimeoutMs === undefined ? '' : ` (switchover timeout ${m.switchoverTimeoutMs / 1000} s)`);

/**
 * One phase: fresh agents, one per side, each on a disk directory of its own; the VM booted
 * (and filled) on `source`, then migrated with each of the phase's modes from wherever it is to
 * the other agent. For `shared`, a third agent on the other side from the VM, on the VM's disk
 * directory (two hosts mounting one share), and the VM migrated to it. A failed migration is
 * noted and leaves the VM where it was; `shared` that the default switchover timeout cut short
 * runs once more with SHARED_TIMEOUT_MS.
 */
async function runPhase(link: Link, phase: Phase, notes: string[]): Promise<Measured[]> {
  const dirs = new Map<Side, string>(
    (['source', 'dest'] as const).map((side) => [side, mkdtempSync(join(tmpdir(), `livemig-bench-${side}-`))]),
  );
  const agentArgs = (side: Side, diskDir: string): string[] => [
    ...['--listen', `${link.host(side)}:0`, '--control', `${link.host(side)}:0`, '--disk-dir', diskDir],
    ...(link.name === 'loopback' ? [] : ['--insecure']),
  ];
  const agents: AgentProcess[] = [];
  const started = (agent: AgentProcess): AgentProcess => (agents.push(agent), agent);
  const results: Measured[] = [];
  try {
    const vm = ['--vm', 'vm', '--memory', MEMORY, '--init', 'zero', '--disk', DISK, '--seed', '5'];
    const [source, dest] = await Promise.all([
      startAgentProcess('agent', {
        wrap: [...link.wrap('source'), ...node(FILLER, String(FILL))],
        args: [...agentArgs('source', dirs.get('source')!), ...vm, '--workload', workload(phase.rate)],
        readyTimeoutMs: 600_000,
      }).then(started),
      startAgentProcess('agent', { wrap: link.wrap('dest'), args: agentArgs('dest', dirs.get('dest')!) }).then(started),
    ]);
    const on = new Map<Side, AgentProcess>([
      ['source', source],
      ['dest', dest],
    ]);
    let holder: Side = 'source';
    let first = true;
    /** Migrate the VM to the other side; the error code when it failed. */
    const migrate = async (
      mode: StorageMode,
      params: { switchoverTimeoutMs?: number } = {},
    ): Promise<string | undefined> => {
      await sleep(SETTLE_MS);
      const to = other(holder);
      const report = await migrateVm(on.get(holder)!, {
        vm: 'vm',
        to: await link.path(to, parseHostPort(on.get(to)!.listen).port),
        mode: 'precopy',
        params: { storage: mode, ...params },
      });
      const measured: Measured = { profile: link.name, rate: phase.rate, mode, report, first, ...params };
      first = false;
      if (report.outcome === 'completed' && report.verify.match === true) {
        // The agent the VM left closes and removes its image after the report; a migration back must wait for that.
        if (mode !== 'shared') measured.releasedMs = await released(join(dirs.get(holder)!, 'vm.img.lock'));
        results.push(measured);
        holder = to;
        return undefined;
      }
      const error = report.error ? `${report.error.code}: ${report.error.message}` : 'no error given';
      const letGoMs = await letGo(on.get(to)!);
      notes.push(
        `${labelOf(measured)}: FAILED (${report.outcome}, verify ${String(report.verify.match)}) — ${error}; ` +
          `the destination let go of its incoming VM ${(letGoMs / 1000).toFixed(1)} s after the report.`,
      );
      process.stderr.write(`storage bench: ${labelOf(measured)} failed — ${error}\n`);
      return report.error?.code ?? report.outcome;
    };
    for (const mode of phase.modes) await migrate(mode);
    if (phase.shared) {
      const to = other(holder);
      on.set(
        to,
        started(await startAgentProcess('agent', { wrap: link.wrap(to), args: agentArgs(to, dirs.get(holder)!) })),
      );
      if ((await migrate('shared')) === 'ERR_SWITCHOVER_TIMEOUT') {
        await migrate('shared', { switchoverTimeoutMs: SHARED_TIMEOUT_MS });
      }
    }
    const filled = /\{"event":"filled".*\}/.exec(source.logs())?.[0];
    if (filled) {
      const { steps, allocatedBytes, ms } = JSON.parse(filled) as { steps: number; allocatedBytes: number; ms: number };
      notes.push(
        `${link.name} ${phase.rate.name}: the guest wrote ${(allocatedBytes / MiB).toFixed(1)} MiB of its disk in ` +
          `${steps} steps at full speed (${(ms / 1000).toFixed(1)} s) before it started.`,
      );
    }
  } finally {
    await Promise.all(agents.map((agent) => agent.stop()));
    for (const dir of dirs.values()) rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

const ms2 = (n: number): string => n.toFixed(n < 1 ? 3 : n < 10 ? 2 : 1);
const latency = (l: WriteLatency | null): string =>
  l ? `p50 ${ms2(l.p50)} / p99 ${ms2(l.p99)} ms (${l.count})` : 'none';

/** The rows of one migration: total time against the bulk copy, downtime, disk bytes on the wire, write latency. */
function rowsOf(m: Measured, bulk: { ms: number; bytes: number }): BenchRow[] {
  const { report, mode, rate } = m;
  const storage = report.storage;
  if (!storage) throw new Error(`storage bench: a ${mode} migration's report has no storage section`);
  const label = labelOf(m);
  const total = report.times.totalMs;
  const ratio = total / bulk.ms;
  const downtime = downtimeOf(report);
  // The goals are the lab's: on loopback nothing is shaped and fixed costs dominate.
  const copyGoal = m.profile !== 'loopback' && mode === 'copy' && rate.name === 'low';
  const downtimeGoal = m.profile === 'wan' && (mode === 'mirror' || mode === 'postcopy');
  const { before, during } = storage.writeLatencyMs;
  const latencyRow = (which: 'p50' | 'p99'): BenchRow => ({
    name: `${label}: guest write latency ${which}, during the migration`,
    value: during?.[which] ?? NaN,
    unit: 'ms',
    ...(before ? { baseline: { name: `${which} before it`, value: before[which], unit: 'ms' } } : {}),
    ...(before && during ? { ratio: during[which] / before[which] } : {}),
  });
  return [
    {
      name: `${label}: total time`,
      value: total,
      unit: 'ms',
      baseline: { name: `bulk copy of ${(bulk.bytes / MiB).toFixed(0)} MiB, same link`, value: bulk.ms, unit: 'ms' },
      ratio,
      ...(copyGoal ? { goal: `≤ ${COPY_GOAL}× bulk copy`, met: ratio <= COPY_GOAL } : {}),
    },
    {
      name: `${label}: downtime`,
      value: downtime,
      unit: 'ms',
      ...(downtimeGoal ? { goal: `< ${DOWNTIME_GOAL_MS} ms`, met: downtime < DOWNTIME_GOAL_MS } : {}),
    },
    {
      name: `${label}: disk bytes on the wire`,
      value: storage.wireBytes / MiB,
      unit: 'MiB',
      baseline: { name: 'allocated at the start', value: storage.allocatedBytes / MiB, unit: 'MiB' },
      ratio: storage.allocatedBytes > 0 ? storage.wireBytes / storage.allocatedBytes : NaN,
    },
    latencyRow('p50'),
    latencyRow('p99'),
  ];
}

/** What one migration did, and at what pace its bytes went next to what the link gave (`linkBps`, measured; undefined on loopback). */
function noteOf(m: Measured, linkBps: number | undefined): string {
  const { report } = m;
  const s = report.storage!;
  const { totalMs, setupMs } = report.times;
  const pace = report.bytes.wire / 1e6 / ((totalMs - setupMs) / 1000);
  return (
    `${labelOf(m)}: setup ${setupMs.toFixed(0)} ms, then ${(report.bytes.wire / MiB).toFixed(1)} MiB on the wire in ` +
    `${((totalMs - setupMs) / 1000).toFixed(1)} s, ${pace.toFixed(1)} MB/s` +
    (linkBps === undefined ? '' : ` (the link: ${(linkBps / 1e6).toFixed(1)} MB/s)`) +
    `; ${report.rounds.length} memory rounds, ${s.rounds} disk rounds; blocks ` +
    `${s.blocksCopied} copied, ${s.blocksResent} re-sent, ${s.blocksMirrored} mirrored, ${s.blocksFetched} fetched, ` +
    `${s.blocksPushed} pushed; ` +
    `write latency before ${latency(s.writeLatencyMs.before)}${m.first ? ' (mostly the fill pass)' : ''}, ` +
    `during ${latency(s.writeLatencyMs.during)}` +
    (s.note ? `; ${s.note}` : '') +
    (m.releasedMs === undefined
      ? ''
      : `; the agent it left let go of its image ${m.releasedMs.toFixed(0)} ms after the report`) +
    '.'
  );
}

const section: BenchSection = {
  id: 'storage',
  title: `Disk migration: 256 MiB + a 4 GiB disk with ${FILL / MiB} MiB allocated (lab: lan, wan)`,
  description:
    `\`npm run bench -- storage\` (bench/storage.bench.ts). A VM of ${MEMORY} (zero boot) with a ${DISK} disk, the \`disk\` ` +
    `workload over a ${(2 * FILL) / MiB} MiB working set (${READ_SHARE}% reads) at ${RATES.filter(
      (r) => FULL || r.name !== 'idle',
    )
      .map((r) => `${r.name} ${r.writes}`)
      .join(', ')} ` +
    `writes/s of 4 KiB, its first ${FILL / MiB} MiB written by the guest itself before it starts; migrated with each \`--storage\` ` +
    'mode (memory pre-copied) between fresh agents in network namespaces shaped to each profile, to and fro. Each total ' +
    'time sits next to a plain bulk copy of the allocated bytes over the same link in the same run (one TCP connection, ' +
    'no protocol); write latency is the guest’s (device service time) during the migration next to before it.',
  async run() {
    const rows: BenchRow[] = [];
    const notes: string[] = [];
    const refused: string[] = [];
    const load0 = loadavg()[0]!;
    const why = labUnavailable();
    let names = PROFILE_NAMES;
    if (why && names.some((n) => n !== 'loopback')) {
      notes.push(
        `Lab profiles not measured: ${why}. Loopback only (no shaping: the figures say nothing about a real link).`,
      );
      process.stderr.write(`storage bench: lab profiles not measured (${why}); loopback only\n`);
      names = ['loopback'];
    }
    const measured: Measured[] = [];
    for (const name of names) {
      const profile = PROFILES[name];
      if (name !== 'loopback' && !profile) throw new Error(`storage bench: unknown profile ${name}`);
      const link = profile ? await openLab(profile, refused) : loopback;
      try {
        const bulk = { bytes: FILL, ms: await bulkCopyMs(link, FILL) };
        if (link.shaped) {
          const { mechanisms, measured: m, profile: p } = link.shaped;
          notes.push(
            `${name} (${p.description}): rate by ${mechanisms.rate}, loss by ${mechanisms.loss}, delay by ${mechanisms.delay}; ` +
              `measured ${(m.rateBps / 1e6).toFixed(2)} MB/s, RTT ${m.rttMs.toFixed(1)} ms; ` +
              `bulk copy of ${(FILL / MiB).toFixed(0)} MiB ${bulk.ms.toFixed(0)} ms (${(FILL / 1e6 / (bulk.ms / 1000)).toFixed(2)} MB/s).`,
          );
        } else {
          notes.push(`loopback: bulk copy of ${(FILL / MiB).toFixed(0)} MiB ${bulk.ms.toFixed(0)} ms.`);
        }
        for (const phase of phasesFor(name)) {
          process.stderr.write(
            `storage bench: ${name} ${phase.rate.name}: ${[...phase.modes, ...(phase.shared ? ['shared'] : [])].join(', ')}\n`,
          );
          for (const m of await runPhase(link, phase, notes)) {
            measured.push(m);
            rows.push(...rowsOf(m, bulk));
            notes.push(noteOf(m, link.shaped?.measured.rateBps));
          }
        }
      } finally {
        await link.close();
      }
    }
    notes.push(...goalNotes(measured, rows));
    notes.push(
      `Write latency is the device's service time of a guest write (request taken → completion posted), p50/p99: "before" over the device's last ` +
        '4096 writes on the agent the VM leaves — for its first migration that includes the fill pass (full speed), later the writes since it ' +
        'arrived there; "during" over the writes while the migration ran — at most its last 4096 (the device keeps no more: a count of 4096 means ' +
        'earlier ones fell out). Mirror makes a write wait for the destination’s acknowledgement; ' +
        'post-copy makes a read of an absent block wait for it (reads are not in these figures).',
      'Downtime: source vCPU pause → destination vCPU resume, the disk included (its last blocks, or the shared image’s flush, close and open). ' +
        'Total time: the migrate command → the destination confirming it runs; post-copy’s includes pushing every block.',
      `Memory is a zero boot: its pages cost little (the guest's generation table, ${(2 * FILL) / 4096 / 256} KiB, and the ring), ` +
        'so the bytes on the wire are the disk’s. The bulk copy moves exactly the fill; a migration moves what was allocated when it started ' +
        '(the fill plus new blocks written since).',
      `This machine is shared (2 vCPUs, both agents and the relay on it): 1-minute load average ${load0.toFixed(1)} at the start of this section, ` +
        `${loadavg()[0]!.toFixed(1)} at its end.`,
      ...pageCacheNote(),
    );
    if (refused.length) notes.push(`Lab links refused by the shaping check and measured again: ${refused.join('; ')}.`);
    return { rows, notes };
  },
};

/**
 * Whether the kernel evicts idle page cache on its own (DAMON's paddr `pageout` scheme, as this
 * machine runs): then an image not touched for a while is read back from the virtual disk — by a
 * copy's source, or a shared destination's hash — while the bulk copy reads nothing.
 */
function pageCacheNote(): string[] {
  const kdamond = '/sys/kernel/mm/damon/admin/kdamonds/0';
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(join(kdamond, path), 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  if (read('state') !== 'on' || read('contexts/0/schemes/0/action') !== 'pageout') return [];
  const minAge = read('contexts/0/schemes/0/access_pattern/age/min');
  const aggrUs = Number(read('contexts/0/monitoring_attrs/intervals/aggr_us'));
  const idle = minAge && aggrUs > 0 ? ` (pages idle ≥ ${((Number(minAge) * aggrUs) / 1e6).toFixed(0)} s)` : '';
  return [
    `The kernel reclaims idle page cache here by itself (DAMON pageout${idle}): a disk image idle for a while is read back ` +
      'from the virtual disk — by a copy’s source, or by a shared destination hashing it — where the bulk copy reads nothing.',
  ];
}

/** Whether each goal was met, in words, with the figures. */
function goalNotes(measured: Measured[], rows: BenchRow[]): string[] {
  const goals = rows.filter((r) => r.goal !== undefined);
  if (goals.length === 0) return ['Goals: not measured in this run.'];
  const missed = goals.filter((r) => r.met === false);
  const line = (r: BenchRow): string =>
    `${r.name} ${r.unit === 'ms' && r.ratio !== undefined ? `${r.ratio.toFixed(2)}×` : `${r.value.toFixed(0)} ${r.unit}`}`;
  return [
    `Goals (copy ≤ ${COPY_GOAL}× the bulk copy at the low rate; mirror and postcopy over wan: downtime < ${DOWNTIME_GOAL_MS} ms, disk included): ` +
      (missed.length
        ? `MISSED — ${missed.map(line).join('; ')}. Met: ${
            goals
              .filter((r) => r.met)
              .map(line)
              .join('; ') || 'none'
          }.`
        : `all met — ${goals.map(line).join('; ')}.`) +
      ` (${measured.length} migrations measured.)`,
  ];
}

export default section;
