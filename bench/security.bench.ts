/**
 * `npm run bench -- security`: what mutual TLS (issue 12) costs a migration, each figure next to
 * a baseline measured in the same run.
 *
 * - S1 (bench-migrate.ts) between secure agents (a throwaway PKI, cli/lab/secure.ts: mutual TLS
 *   on both planes, a ticket from `prepare-incoming`) against a raw Node TLS 1.3 socket with the
 *   same certificates moving the same 1 GiB between two other processes (goal ≥ 0.8×), and against
 *   plaintext livemig; also raw TLS against raw TCP (the cipher alone). Runs interleaved.
 * - Handshake cost: a data connection's connect + mutual TLS 1.3 handshake against a TCP connect,
 *   and the S1 setup time secure against plaintext.
 * - Control flood (issue 13): total time of a secure migration while admin clients flood the
 *   source's control port (bench/control-flood.ts) against the same migration unloaded, in pairs
 *   (goal ≤ 1.5×: the migration keeps its pace).
 * - The lab's lan and wan profiles (network namespaces, root only; cli/lab/): total time of a
 *   secure migration against a plaintext one of the same VM (goal ≤ 1.05×: the link is the limit).
 *
 * Environment: LIVEMIG_BENCH_SECURITY_RUNS (S1 runs, default 3), LIVEMIG_BENCH_SECURITY_FLOOD_RUNS
 * (unloaded + flooded pairs, default 3; 0: none), LIVEMIG_BENCH_SECURITY_PROFILES
 * (profile:runs per mode, default lan:5,wan:2 — a lan run takes seconds, a wan run half a minute;
 * empty: none), LIVEMIG_BENCH_WARM_GIB (default 6).
 */
import { once } from 'node:events';
import net from 'node:net';
import { loadavg } from 'node:os';
import tls from 'node:tls';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { withLabMigration } from '../cli/lab/lab-migration.ts';
import { PROFILES } from '../cli/lab/profiles.ts';
import { SECURE_NAMES, securePki, TLS13_ONLY, tlsCredentials } from '../cli/lab/secure.ts';
import type { ThrowawayPki } from '../cli/throwaway-pki.ts';
import { sumTallies } from '../cli/control-flood.ts';
import { labUnavailable } from '../cli/lab/topology.ts';
import { FLOOD_CLIENTS, floodMigration, FLOOD_VM, type FloodRun } from './control-flood.ts';
import { migrateOnce, rawOnce, S1, warmMemory, type Migrated, type RawTransfer } from './bench-migrate.ts';
import { median, ratioRow, type BenchRow, type BenchSection } from './harness.ts';
import { auditAppendUs, recordExchangeMs } from '@livemig/agent';
import { createSigner, loadPki } from '@livemig/shared/security';

const GiB = 1024 ** 3;
const RUNS = Number(process.env.LIVEMIG_BENCH_SECURITY_RUNS ?? 3);
const FLOOD_RUNS = Number(process.env.LIVEMIG_BENCH_SECURITY_FLOOD_RUNS ?? 3);
const LAB_PROFILES = (process.env.LIVEMIG_BENCH_SECURITY_PROFILES ?? 'lan:5,wan:2')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)
  .map((item) => {
    const [name = '', runs = '2'] = item.split(':');
    return { name, runs: Number(runs) };
  });
const WARM_GIB = Number(process.env.LIVEMIG_BENCH_WARM_GIB ?? 6);
const HANDSHAKES = 50;
const LAB_SPEC = parseVmSpec({ memory: '256MiB', init: 'random', workload: 'idle', seed: 5 });

const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000);
const fmt = (n: number, digits = 0): string => n.toFixed(digits);
const list = (values: number[], digits = 0): string => values.map((v) => fmt(v, digits)).join(' / ');
/** Within pairs, alternate which goes first, so neither always runs on the warmer machine. */
async function pairInOrder(i: number, first: () => Promise<void>, second: () => Promise<void>): Promise<void> {
  for (const step of i % 2 ? [second, first] : [first, second]) await step();
}
/** `runs` pairs of `first` and `second` (pairInOrder); each one's results, in run order. */
async function pairs<A, B>(runs: number, first: () => Promise<A>, second: () => Promise<B>): Promise<[A[], B[]]> {
  const firsts: A[] = [];
  const seconds: B[] = [];
  for (let i = 0; i < runs; i++) {
    await pairInOrder(
      i,
      async () => void firsts.push(await first()),
      async () => void seconds.push(await second()),
    );
  }
  return [firsts, seconds];
}
/** What the secure migrations' reports say of their protection ("TLSv1.3 TLS_AES_…"), or undefined. */
function reportedCipher(reports: MigrationReport[]): string | undefined {
  const seen = new Set(reports.map((r) => (r.security ? `TLS ${r.security.tls} ${r.security.cipher}` : 'none')));
  return seen.size === 1 && !seen.has('none') ? [...seen][0] : undefined;
}

async function s1Rows(pki: ThrowawayPki, notes: string[]): Promise<BenchRow[]> {
  const rawTls: RawTransfer[] = [];
  const rawTcp: RawTransfer[] = [];
  const secure: Migrated[] = [];
  const plain: Migrated[] = [];
  for (let i = 0; i < RUNS; i++) {
    await pairInOrder(
      i,
      async () => {
        rawTls.push(await rawOnce(GiB, pki));
        secure.push(await migrateOnce(S1.vm, pki));
      },
      async () => {
        rawTcp.push(await rawOnce(GiB));
        plain.push(await migrateOnce(S1.vm));
      },
    );
  }
  const total = (runs: Migrated[]): number[] => runs.map((r) => r.report.times.totalMs);
  const round0 = (runs: Migrated[]): number[] => runs.map((r) => r.report.rounds[0]?.ms ?? NaN);
  const setup = (runs: Migrated[]): number[] => runs.map((r) => r.report.times.setupMs);
  const cpu = (runs: Migrated[]): number => median(runs.map((r) => r.cpu.source + r.cpu.dest));
  const sides = (runs: Migrated[]): Migrated['cpu'] => ({
    source: median(runs.map((r) => r.cpu.source)),
    dest: median(runs.map((r) => r.cpu.dest)),
  });
  const [cpuS, cpuP] = [sides(secure), sides(plain)];
  const rawCpu = (runs: RawTransfer[]): number => median(runs.map((r) => r.cpu));
  const rawTlsBaseline = {
    name: 'raw Node TLS 1.3 socket, mutual, same certificates, same 1 GiB, two other processes, 1 MiB writes → onread',
    value: median(rawTls.map((r) => mbps(GiB, r.ms))),
    unit: 'MB/s',
  };
  const secureTotal = median(total(secure).map((ms) => mbps(GiB, ms)));
  const cipher = [...new Set(rawTls.map((r) => `${r.protocol ?? '?'} ${r.cipher ?? '?'}`))].join(', ');
  const fromReport = reportedCipher(secure.map((r) => r.report));
  notes.push(
    `S1 (${RUNS} runs each, interleaved): secure total ${list(total(secure))} ms (round 0 ${list(round0(secure))}, setup ${list(setup(secure))}); ` +
      `plaintext total ${list(total(plain))} ms (round 0 ${list(round0(plain))}, setup ${list(setup(plain))}); ` +
      `raw TLS ${list(rawTls.map((r) => r.ms))} ms; raw TCP ${list(rawTcp.map((r) => r.ms))} ms.`,
    `Where the time goes (medians, per GiB): CPU of source + destination agent, secure ${fmt(cpuS.source)} + ${fmt(cpuS.dest)} ms, ` +
      `plaintext ${fmt(cpuP.source)} + ${fmt(cpuP.dest)} ms: mutual TLS adds ${fmt(cpuS.source - cpuP.source)} ms at the source and ` +
      `${fmt(cpuS.dest - cpuP.dest)} ms at the destination, where the cipher alone costs both ends together ${fmt(rawCpu(rawTls) - rawCpu(rawTcp))} ms ` +
      `(raw TLS − raw TCP, sender + receiver: ${fmt(rawCpu(rawTls))} − ${fmt(rawCpu(rawTcp))} ms). ` +
      "The agents' secure data channel reads TLS sockets with onread, as the raw TLS receiver does (socket-handle.ts gives an established TLS socket the option): each record is decrypted once, into the reused read buffer or straight into guest memory. " +
      `With 2 vCPUs shared by both agents a secure migration cannot take less than about (source + destination CPU) ÷ 2 = ${fmt((cpuS.source + cpuS.dest) / 2)} ms ` +
      `(median total here ${fmt(median(total(secure)))} ms), against ${fmt(median(rawTls.map((r) => r.ms)))} ms for the raw TLS transfer.`,
    fromReport
      ? `Cipher suite: ${fromReport} (report.security of every secure migration); the raw TLS socket negotiated ${cipher}.`
      : `Cipher suite: ${cipher}, from the raw TLS socket (getProtocol()/getCipher()); the migration reports gave none.`,
  );
  return [
    ratioRow(
      {
        name: `${S1.label}, mutual TLS: 1 GiB ÷ total migration time`,
        value: secureTotal,
        unit: 'MB/s',
        goal: '≥ 0.8× raw TLS',
      },
      rawTlsBaseline,
      0.8,
    ),
    ratioRow(
      {
        name: `${S1.label}, mutual TLS: 1 GiB ÷ round-0 time`,
        value: median(round0(secure).map((ms) => mbps(GiB, ms))),
        unit: 'MB/s',
        goal: '≥ 0.8× raw TLS',
      },
      rawTlsBaseline,
      0.8,
    ),
    ratioRow(
      { name: `${S1.label}, mutual TLS vs plaintext livemig: 1 GiB ÷ total time`, value: secureTotal, unit: 'MB/s' },
      {
        name: 'plaintext agents, same VM, same run',
        value: median(total(plain).map((ms) => mbps(GiB, ms))),
        unit: 'MB/s',
      },
    ),
    ratioRow(
      { name: 'the cipher alone: raw TLS 1.3 socket, 1 GiB', value: rawTlsBaseline.value, unit: 'MB/s' },
      { name: 'raw TCP socket, same bytes, same run', value: median(rawTcp.map((r) => mbps(GiB, r.ms))), unit: 'MB/s' },
    ),
    ratioRow(
      { name: `${S1.label}, CPU per GiB: secure agents (source + destination)`, value: cpu(secure), unit: 'ms' },
      { name: 'plaintext agents, same run', value: cpu(plain), unit: 'ms' },
    ),
    ratioRow(
      {
        name: `${S1.label}: setup (migrate command → first page), mutual TLS + ticket`,
        value: median(setup(secure)),
        unit: 'ms',
      },
      { name: 'plaintext agents, same run', value: median(setup(plain)), unit: 'ms' },
    ),
  ];
}

/**
 * ms from connect() to the server's first byte, which it sends once the connection is up (with
 * TLS: its handshake done and the client's certificate verified), over loopback in this process.
 */
async function connectMs(server: net.Server, connect: (port: number) => net.Socket): Promise<number> {
  const t0 = performance.now();
  const socket = connect((server.address() as net.AddressInfo).port);
  await once(socket, 'data');
  const ms = performance.now() - t0;
  socket.destroy();
  return ms;
}

/** Median connect + handshake time, mutual TLS 1.3 (the agents' settings and certificates) and plain TCP. */
async function handshakes(pki: ThrowawayPki): Promise<{ tlsMs: number; tcpMs: number }> {
  const hello = (socket: net.Socket): void => void socket.end(Buffer.of(1));
  const tlsServer = tls.createServer(
    {
      ...TLS13_ONLY,
      ...(await tlsCredentials(pki.dir, SECURE_NAMES.dest)),
      requestCert: true,
      rejectUnauthorized: true,
    },
    hello,
  );
  const tcpServer = net.createServer(hello);
  const client = await tlsCredentials(pki.dir, SECURE_NAMES.source);
  for (const server of [tlsServer, tcpServer]) server.listen(0, '127.0.0.1');
  await Promise.all([once(tlsServer, 'listening'), once(tcpServer, 'listening')]);
  const tlsTimes: number[] = [];
  const tcpTimes: number[] = [];
  try {
    for (let i = 0; i < HANDSHAKES; i++) {
      tlsTimes.push(
        await connectMs(tlsServer, (port) =>
          tls.connect({
            ...TLS13_ONLY,
            ...client,
            host: '127.0.0.1',
            port,
            checkServerIdentity: (_host, peer) => tls.checkServerIdentity(SECURE_NAMES.dest, peer),
          }),
        ),
      );
      tcpTimes.push(await connectMs(tcpServer, (port) => net.connect({ host: '127.0.0.1', port })));
    }
  } finally {
    tlsServer.close();
    tcpServer.close();
  }
  return { tlsMs: median(tlsTimes), tcpMs: median(tcpTimes) };
}

interface LabRun {
  totalMs: number;
  setupMs: number;
  wire: number;
  rateBps: number;
  rttMs: number;
}

/** Lab links the shaping check refused (cli/lab/measure.ts: > 20% off the profile), retried; said in the notes. */
const refusedLinks: string[] = [];

async function labRun(name: string, secure: boolean): Promise<LabRun> {
  const profile = PROFILES[name];
  if (!profile) throw new Error(`unknown profile ${name}`);
  for (let attempt = 1; ; attempt++) {
    try {
      return await withLabMigration(
        { profile, spec: LAB_SPEC, mode: 'precopy', secure },
        async ({ report, measured }) => {
          if (report.outcome !== 'completed' || !report.verify.match) {
            throw new Error(`lab ${name}${secure ? ' secure' : ''}: ${report.outcome} ${JSON.stringify(report.error)}`);
          }
          return {
            totalMs: report.times.totalMs,
            setupMs: report.times.setupMs,
            wire: report.bytes.wire,
            rateBps: measured.rateBps,
            rttMs: measured.rttMs,
          };
        },
      );
    } catch (error) {
      // A busy machine can slow the delay relay past the check: measure a fresh lab again, twice at most.
      const message = (error as Error).message;
      if (attempt === 3 || !message.startsWith('lab link is not what profile')) throw error;
      refusedLinks.push(message);
    }
  }
}

async function labRows(notes: string[]): Promise<BenchRow[]> {
  const why = labUnavailable();
  if (why) {
    notes.push(`Lab profiles not measured: ${why}.`);
    return [];
  }
  const rows: BenchRow[] = [];
  for (const { name, runs } of LAB_PROFILES) {
    const [plain, secure] = await pairs(
      runs,
      () => labRun(name, false),
      () => labRun(name, true),
    );
    const total = (of: LabRun[]): number[] => of.map((r) => r.totalMs);
    const bound = (of: LabRun[]): number[] => of.map((r) => (r.wire / r.rateBps) * 1000);
    const setup = (of: LabRun[]): number => median(of.map((r) => r.setupMs));
    const ratio = median(total(secure)) / median(total(plain));
    rows.push({
      ...ratioRow(
        {
          name: `lab ${name}: ${LAB_SPEC.memoryBytes / 2 ** 20} MiB idle random, mutual TLS: total time (median of ${runs})`,
          value: median(total(secure)),
          unit: 'ms',
        },
        { name: 'plaintext agents, same VM and profile, same run', value: median(total(plain)), unit: 'ms' },
      ),
      goal: '≤ 1.05× plaintext',
      met: ratio <= 1.05,
    });
    const links = [...secure, ...plain];
    const rates = list(
      links.map((r) => r.rateBps / 1e6),
      1,
    );
    const rtts = list(
      links.map((r) => r.rttMs),
      1,
    );
    notes.push(
      `lab ${name} (${PROFILES[name]!.description}; measured ${rates} MB/s, RTT ${rtts} ms; plaintext and secure runs alternate in order): ` +
        `secure total ${list(total(secure))} ms (bytes on the wire ÷ measured rate: ${list(bound(secure))} ms), ` +
        `plaintext ${list(total(plain))} ms (bound ${list(bound(plain))} ms); median setup secure ${fmt(setup(secure))} ms, plaintext ${fmt(setup(plain))} ms.`,
    );
  }
  return rows;
}

/**
 * A migration's pace under a control-plane flood (issue 13): FLOOD_RUNS pairs of the same secure
 * migration, unloaded and flooded, back to back (which goes first alternates).
 */
async function floodRows(pki: ThrowawayPki, notes: string[]): Promise<BenchRow[]> {
  if (FLOOD_RUNS <= 0) return [];
  const [unloaded, flooded] = await pairs(
    FLOOD_RUNS,
    () => floodMigration(pki, false),
    () => floodMigration(pki, true),
  );
  const total = (runs: FloodRun[]): number[] => runs.map((r) => r.report.times.totalMs);
  const pairRatios = total(flooded).map((ms, i) => ms / total(unloaded)[i]!);
  const answers = Object.entries(sumTallies(flooded.map((r) => r.tally ?? {})))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([answer, n]) => `${answer} ${n}`)
    .join(', ');
  const ratio = median(total(flooded)) / median(total(unloaded));
  notes.push(
    `Control flood (${FLOOD_RUNS} pairs, fresh secure agents for every migration, unloaded and flooded back to back): ${FLOOD_CLIENTS} admin clients ` +
      "on the source's control port (wss, mutual TLS), each asking `digest` of the migrating VM in one loop and `query-vms` in another, again as soon as answered, " +
      'from 500 ms before the migrate command until the report; answers over all flooded runs: ' +
      `${answers} (ERR_RATE_LIMITED: a request over its client's rate, the control server's default; ERR_BUSY: a digest while the VM migrates; ERR_VM_STATE: a digest after the VM had left). ` +
      `Total unloaded ${list(total(unloaded))} ms, flooded ${list(total(flooded))} ms; per pair flooded ÷ unloaded ${list(pairRatios, 2)} (median ${fmt(median(pairRatios), 2)}).`,
  );
  return [
    {
      ...ratioRow(
        {
          name:
            `control flood: ${FLOOD_VM.memory} ${FLOOD_VM.init} ${FLOOD_VM.workload}, mutual TLS, total time while ${FLOOD_CLIENTS} clients ` +
            `flood the source's control port (median of ${FLOOD_RUNS})`,
          value: median(total(flooded)),
          unit: 'ms',
        },
        { name: 'the same migration unloaded, same run', value: median(total(unloaded)), unit: 'ms' },
      ),
      goal: '≤ 1.5× unloaded',
      met: ratio <= 1.5,
    },
  ];
}

/** Record exchanges and audit appends timed (each a median of this many). */
const NON_REPUDIATION_SAMPLES = 200;

/**
 * Non-repudiation's cost (issue 13): the CPU of one record exchange (sign, check and countersign,
 * check) with this fleet's certificates, and one audit log append with its fsync — signed, next
 * to the same append unsigned, on the file system the agents keep their state on (tmpdir here).
 */
async function nonRepudiationRows(pki: ThrowawayPki, notes: string[]): Promise<BenchRow[]> {
  const [source, dest] = await Promise.all(
    [SECURE_NAMES.source, SECURE_NAMES.dest].map(async (name) => createSigner(await loadPki(pki.dir, name))),
  );
  const exchanges: number[] = [];
  for (let i = 0; i < NON_REPUDIATION_SAMPLES; i++) exchanges.push(await recordExchangeMs(source!, dest!));
  const signed = await auditAppendUs({ dir: pki.dir, signer: source!, entries: NON_REPUDIATION_SAMPLES });
  const unsigned = await auditAppendUs({ dir: pki.dir, entries: NON_REPUDIATION_SAMPLES });
  notes.push(
    `Non-repudiation: a record exchange's CPU is ${fmt(median(exchanges), 2)} ms median (p99 ${fmt(percentile(exchanges, 0.99), 2)} ms) ` +
      'over ' +
      NON_REPUDIATION_SAMPLES +
      ' exchanges in one process (the first pays for parsing the certificates); it runs after Resumed, so it adds to the total time, not to the downtime. ' +
      'Audit appends write to a real file in the temporary directory with fdatasync before each returns.',
  );
  return [
    {
      name: `record exchange: source signs, destination checks and countersigns, source checks (CPU, median of ${NON_REPUDIATION_SAMPLES})`,
      value: median(exchanges),
      unit: 'ms',
    },
    ratioRow(
      {
        name: `audit log append, signed, fsync included (median of ${NON_REPUDIATION_SAMPLES})`,
        value: median(signed),
        unit: 'µs',
      },
      { name: 'the same append unsigned, same run', value: median(unsigned), unit: 'µs' },
    ),
  ];
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

const section: BenchSection = {
  id: 'security',
  title: 'Mutual TLS: what it costs a migration (S1 on loopback, lab lan and wan)',
  description:
    '`npm run bench -- security` (bench/security.bench.ts). Secure agents (`--pki`, a throwaway fleet PKI with ECDSA P-256 ' +
    'certificates; mutual TLS 1.3 on the data and control planes; the destination takes the VM with a ticket from ' +
    '`prepare-incoming`) against plaintext agents and raw sockets, fresh agent processes for every migration, runs ' +
    'interleaved, medians.',
  async run() {
    const rows: BenchRow[] = [];
    const notes: string[] = [];
    const loadAtStart = loadavg()[0]!;
    const pki = await securePki();
    try {
      if (WARM_GIB > 0) {
        const msPerGiB = await warmMemory(WARM_GIB);
        notes.push(
          `Memory warmed first: ${WARM_GIB} GiB touched and freed in a throwaway process (${fmt(msPerGiB)} ms per GiB), as in the migration section.`,
        );
      }
      rows.push(...(await s1Rows(pki, notes)));
      const { tlsMs, tcpMs } = await handshakes(pki);
      rows.push(
        ratioRow(
          {
            name: `data connection: connect + mutual TLS 1.3 handshake until the server's first byte (median of ${HANDSHAKES})`,
            value: tlsMs,
            unit: 'ms',
          },
          { name: 'TCP connect until the server’s first byte, same run', value: tcpMs, unit: 'ms' },
        ),
      );
      notes.push(
        `Handshake cost: TLS adds ${fmt(tlsMs - tcpMs, 2)} ms to each data connection (ECDSA P-256 certificates both ways, ` +
          'full handshake, no resumption; client and server in the bench process on loopback, so both sides’ crypto runs on one thread). ' +
          'A secure migration also asks the destination for a ticket first (one wss request, not in the total time above). ' +
          'Secure agents keep the audit log a --pki agent always keeps (hash-chained, signed, fsynced entries; issue 13), here in the throwaway PKI directory: it is part of what they cost.',
      );
      rows.push(...(await nonRepudiationRows(pki, notes)));
      rows.push(...(await floodRows(pki, notes)));
      rows.push(...(await labRows(notes)));
    } finally {
      await pki.remove();
    }
    notes.push(
      'Setup runs from the migrate command to the first page; total time to the destination confirming Resumed (see the migration section). ' +
        'The raw baselines move only bytes (no framing, hashing or guest memory); the raw TLS receiver reads with onread into one reused 256 KiB buffer.',
      `This machine is shared (2 vCPUs; other jobs may run at the same time: 1-minute load average ${fmt(loadAtStart, 1)} at the start of this section, ${fmt(loadavg()[0]!, 1)} at its end), so compare ratios, not absolute figures.`,
    );
    if (refusedLinks.length)
      notes.push(`Lab links refused by the shaping check and measured again: ${refusedLinks.join('; ')}.`);
    return { rows, notes };
  },
};

export default section;
