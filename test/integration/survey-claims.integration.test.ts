/**
 * The survey's claims as tests (issue 16): what the live-migration literature reports, checked
 * on real agent processes over loopback (mutual TLS, a ticket per migration: test/helpers/fleet.ts).
 *
 *  1. Pre-copy total time and bytes on the wire grow with the dirty rate (Clark et al. 2005:
 *     writable working set; Akoush et al. 2010: the dirty rate is a first-order term of both).
 *  2. Post-copy downtime does not grow with the dirty rate, and every page crosses once, so its
 *     bytes stay ≈ the memory size (Hines & Gopalan 2009).
 *  3. Hybrid (pre-copy rounds, then post-copy) lies between: at a high dirty rate it moves more
 *     bytes than post-copy and fewer than pre-copy, and its downtime is below pre-copy's
 *     non-converging downtime.
 *  4. A capped link lengthens pre-copy in proportion: total ≈ memory ÷ cap (Akoush et al. 2010:
 *     link speed is the other first-order term).
 *
 * One pair of agents serves the file, one fresh VM per migration (created, migrated, checked,
 * destroyed on both sides): 64 MiB of random memory (no zero pages to skip). The dirty-rate
 * matrix (claims 1–3) runs on a link capped at 100 MB/s, so that the link, not the two shared
 * cores, sets the pace, with a 30 ms downtime limit and at most 6 rounds. The dirty rates are a
 * 16 MiB hot set written at random:
 *
 *   idle   nothing written
 *   low    15 000 writes/s: at most ~61 MB/s of dirty pages, below the link: pre-copy converges
 *   high   40 000 writes/s: ~164 MB/s, above the link: pre-copy does not converge (max-rounds)
 *
 * Every migration is checked correct before any claim is judged: completed, and the source's
 * and destination's memory digests equal (the agents compare them before the destination may
 * run the VM). The determinism oracle is left to precopy/postcopy.integration.test.ts, which run
 * it for every mode and workload: here it would add ~0.6 s to each of 17 migrations.
 *
 * Every time figure is the best (lowest) of 2 runs, interleaved: another process's burst of CPU
 * on this shared 2-core machine only ever adds to a time — single runs of an idle pre-copy took
 * 734–1050 ms under load averages of 5–9. Tolerances, from 6 full runs of this file and 3
 * exploratory matrices (load average 4–9: other engineers' tests and builds running):
 *  - growth (claim 1) must exceed the noise: bytes each step ≥ 1.02 × the one before (best-of-2
 *    bytes seen: idle 64.09 MiB, low 91.6–93.1, high 137.4–138.9; a rate's runs differ by < 15 %);
 *    total time each step ≥ 1.05 × (best-of-2 totals seen: idle 734–921 ms, low 1026–1296 ms,
 *    high 1538–1814 ms: low ≥ 1.23 × idle in every run).
 *  - post-copy downtime flat (claim 2): max − min ≤ max(20 ms, 50 % of the median). Post-copy
 *    downtimes seen: 2.6–10.0 ms in single runs, best-of-2 spreads across the rates ≤ 3.2 ms; the
 *    20 ms floor absorbs a stall of the agents behind other processes, yet is a fifth of
 *    pre-copy's downtime growth over the same sweep (~5 → 112–149 ms), which the test checks
 *    too: a downtime that grew as pre-copy's does would fail.
 *  - post-copy bytes ≤ 1.02 × (memory + the pages answered again for a fault), and no other page
 *    resent: the framing costs 0.15–0.3 % here; 2 % is far below one resend of the hot set (25 %
 *    of memory).
 *  - hybrid (claim 3): strict inequalities, no tolerance needed: 80.1 MiB between 64.1 and
 *    ≥ 137 MiB; downtime 6–28 ms against ≥ 112 ms.
 *  - capped link (claim 4, idle VM, 50 and 25 MB/s): the ratio of the totals is 2 ± 25 % (seen
 *    1.86–1.97), and each total is 0.97–1.25 × memory ÷ cap (seen 1.01–1.09): below 1 only by
 *    the token bucket's 10 ms burst, above by the fixed costs (setup, switchover, verification:
 *    ~50–130 ms) plus noise.
 *
 * The whole file takes 43–62 s here (vitest included), depending on the load.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { MigrateParams } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { PAGE_SIZE, parseVmSpec, type VmSpec } from '@livemig/shared/vm';
import {
  between,
  below,
  flat,
  format,
  grows,
  median,
  near,
  show,
  verdict,
  type Figure,
  type Verdict,
} from '../helpers/claims.ts';
import { useFleet, type FleetAgent } from '../helpers/fleet.ts';
import { stopAll } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';

const fleet = useFleet();
// One pair of agents serves the whole file (started by the first test that needs it); stopAll
// kills them after the last test, whether the tests passed or not.
afterAll(stopAll);

const MEMORY = '64MiB';
const SEED = 16;
/** The matrix's link and switchover rule (see the header). */
const LINK: MigrateParams = { maxBandwidthBps: 100e6, downtimeLimitMs: 30, maxRounds: 6 };

const RATES = [
  { label: 'idle', workload: 'idle' },
  { label: 'low', workload: 'hotset:wss=16MiB,rate=15000' },
  { label: 'high', workload: 'hotset:wss=16MiB,rate=40000' },
] as const;
type Rate = (typeof RATES)[number]['label'];

/**
 * Runs of each measured configuration (mode and rate, or cap). Its time figures are the best
 * (lowest) of its runs: on a shared machine, another process's burst of CPU only ever adds to a time.
 */
const RUNS = 2;

/**
 * Hybrid's postcopy-after: 1 is round 0, then post-copy of what the guest dirtied meanwhile (2, a
 * round more, moved ~93 MiB against 1's ~80 MiB: between too, but 2 s more of the file's budget).
 */
const HYBRID_AFTER = [1] as const;

type Mode = 'precopy' | 'postcopy' | 'hybrid';

interface Pair {
  source: FleetAgent;
  dest: FleetAgent;
}

let vmCount = 0;

function specOf(workload: string): VmSpec {
  return parseVmSpec({ memory: MEMORY, init: 'random', workload, seed: SEED });
}

const memoryBytes = specOf('idle').memoryBytes;

/**
 * Boot a fresh VM on the pair's source, migrate it, check it arrived intact (completed, the
 * source's and destination's digests equal), then destroy it on both sides so that the next
 * run has the machine to itself.
 */
async function migrateOnce(
  pair: Pair,
  what: string,
  workload: string,
  mode: Mode,
  params: MigrateParams,
): Promise<MigrationReport> {
  const spec = specOf(workload);
  const vm = `vm${++vmCount}`;
  const { source, dest } = pair;
  await fleet.ask(source, (client) =>
    client.request('create-vm', {
      name: vm,
      memory: spec.memoryBytes,
      init: spec.init,
      workload: spec.workload,
      seed: spec.seed,
    }),
  );
  const report = await fleet.migrate(source, dest, { vm, mode, params });
  const context = `${what} (${mode}, ${workload})`;
  expectCompleted(report, context);
  const digests = `${context}: digests ${JSON.stringify(report.verify)}`;
  expect(report.verify.match, digests).toBe(true);
  expect(report.verify.sourceDigest, digests).toBe(report.verify.destDigest);
  await Promise.all([
    fleet.ask(dest, (client) => client.request('destroy-vm', { vm })),
    fleet.ask(source, (client) => client.request('destroy-vm', { vm })),
  ]);
  return report;
}

/** What the dirty-rate matrix measured (claims 1–3): RUNS reports per mode and rate. */
interface Matrix {
  precopy: Record<Rate, MigrationReport[]>;
  postcopy: Record<Rate, MigrationReport[]>;
  hybrid: { label: string; report: MigrationReport }[];
}

let agents: Promise<Pair> | undefined;
/** The file's source and destination agents, started once. */
function pairOfAgents(): Promise<Pair> {
  return (agents ??= Promise.all([fleet.agent(), fleet.agent()]).then(([source, dest]) => ({ source, dest })));
}

async function runMatrix(): Promise<Matrix> {
  const pair = await pairOfAgents();
  const precopy = { idle: [], low: [], high: [] } as Record<Rate, MigrationReport[]>;
  const postcopy = { idle: [], low: [], high: [] } as Record<Rate, MigrationReport[]>;
  // Rates in rising order within each pass: the agents' warm-up (JIT) lands on idle, against
  // claim 1; the modes alternate so a slow spell of the machine hits both.
  for (let run = 1; run <= RUNS; run++) {
    for (const { label, workload } of RATES) {
      precopy[label].push(await migrateOnce(pair, `${label} #${run}`, workload, 'precopy', LINK));
      postcopy[label].push(await migrateOnce(pair, `${label} #${run}`, workload, 'postcopy', LINK));
    }
  }
  const hybrid = [];
  for (const after of HYBRID_AFTER) {
    const label = `hybrid after ${after}`;
    const params = { ...LINK, postcopyAfterRounds: after };
    hybrid.push({ label, report: await migrateOnce(pair, label, RATES[2].workload, 'hybrid', params) });
  }
  return { precopy, postcopy, hybrid };
}

let matrix: Promise<Matrix> | undefined;
/** The matrix, run once by whichever claim asks first. */
function dirtyRateMatrix(): Promise<Matrix> {
  return (matrix ??= runMatrix());
}

/** Post-copy pages already pushed, asked for again by a fault and answered again (fault thread). */
function again(report: MigrationReport): number {
  return report.postcopy?.pagesAnsweredAgain ?? 0;
}

function assertClaims(verdicts: readonly Verdict[]): void {
  for (const v of verdicts) expect(v.ok, v.message).toBe(true);
}

/** The downtime of a migration that resumed (it completed: checked in migrateOnce). */
function downtime(report: MigrationReport): number {
  return report.times.downtimeMs ?? Number.NaN;
}

/** The lowest of a figure over a rate's runs. */
function best(reports: readonly MigrationReport[], figure: (report: MigrationReport) => number): number {
  return Math.min(...reports.map(figure));
}

/** Every run of a mode, one figure each: "idle #1 3.1 ms, idle #2 2.7 ms, …". */
function everyRun(runs: Record<Rate, MigrationReport[]>, figure: (report: MigrationReport) => number): Figure[] {
  return RATES.flatMap(({ label }) => runs[label].map((r, i) => ({ label: `${label} #${i + 1}`, value: figure(r) })));
}

/** "737.4 ms = setup 48.0 + rounds 669.2 + switchover and the rest 20.2": where a total went. */
function breakdown(r: MigrationReport): string {
  const rounds = r.rounds.reduce((sum, round) => sum + round.ms, 0);
  const { totalMs, setupMs } = r.times;
  const rest = totalMs - setupMs - rounds;
  return `${format(totalMs, 'ms')} = setup ${setupMs.toFixed(1)} + rounds ${rounds.toFixed(1)} + switchover and the rest ${rest.toFixed(1)}`;
}

const wire = (r: MigrationReport): number => r.bytes.wire;
const total = (r: MigrationReport): number => r.times.totalMs;

describe('the survey’s claims, measured on real agents', () => {
  it('1. pre-copy: total time and bytes on the wire grow with the dirty rate (idle < low < high)', async ({
    annotate,
  }) => {
    const { precopy } = await dirtyRateMatrix();
    const bytes = RATES.map(({ label }) => ({ label, value: best(precopy[label], wire) }));
    const time = RATES.map(({ label }) => ({ label, value: best(precopy[label], total) }));
    const every = RATES.flatMap(({ label }) =>
      precopy[label].map(
        (r, i) => `${label} #${i + 1} ${format(r.bytes.wire, 'MiB')}, ${r.rounds.length} rounds, ${breakdown(r)}`,
      ),
    );
    await annotate(`pre-copy, every run: ${every.join('; ')}`);
    assertClaims([
      grows(`pre-copy bytes on the wire grow with the dirty rate (best of ${RUNS})`, bytes, 'MiB', 0.02),
      grows(`pre-copy total time grows with the dirty rate (best of ${RUNS})`, time, 'ms', 0.05),
    ]);
  });

  it('2. post-copy: downtime stays flat across dirty rates; every page is pushed once, bytes ≈ memory', async ({
    annotate,
  }) => {
    const { postcopy, precopy } = await dirtyRateMatrix();
    const tolerance = { absolute: 20, relative: 0.5 };
    const post = RATES.map(({ label }) => ({ label, value: best(postcopy[label], downtime) }));
    const pre = RATES.map(({ label }) => ({ label: `pre-copy ${label}`, value: best(precopy[label], downtime) }));
    const allowed = Math.max(tolerance.absolute, tolerance.relative * median(post.map((f) => f.value)));
    const preSpread = Math.max(...pre.map((f) => f.value)) - Math.min(...pre.map((f) => f.value));
    const runs = show(everyRun(postcopy, downtime), 'ms');
    const verdicts: Verdict[] = [
      flat(
        `post-copy downtime does not grow with the dirty rate (best of ${RUNS}; runs: ${runs})`,
        post,
        'ms',
        tolerance,
      ),
      // The tolerance means something only if a downtime that grew as pre-copy's does would break it.
      verdict(
        preSpread > allowed,
        'pre-copy downtime, over the same sweep, grows by more than the post-copy tolerance',
        show(pre, 'ms'),
        `max − min = ${preSpread.toFixed(1)} ms > ${allowed.toFixed(1)} ms`,
      ),
    ];
    for (const { label } of RATES) {
      for (const [i, r] of postcopy[label].entries()) {
        const run = `${label} #${i + 1}`;
        verdicts.push(
          // The bytes of the pages answered again (below) come on top: with the source's fault
          // worker a fault is answered at once, and one in twenty pages of a 64 MiB VM can be on
          // its way behind bulk data when the guest touches it (2.9 MiB of 66.9 in one run).
          near(
            `post-copy bytes on the wire ≈ memory size + the pages answered again (${run})`,
            { label: 'wire', value: r.bytes.wire },
            { label: 'memory + answered again', value: memoryBytes + again(r) * PAGE_SIZE },
            'MiB',
            { min: 1, max: 1.02 },
          ),
          // Every page is pushed once. The one exception is the fault thread's (issue 18): a page
          // already pushed but still in flight behind bulk data when the guest faults on it is
          // answered again on the fault channel (pagesAnsweredAgain), at most once per fault.
          verdict(
            r.pages.sent === r.pages.total + again(r) &&
              r.pages.resent === again(r) &&
              again(r) <= (r.postcopy?.faults ?? 0),
            `post-copy sends every page once, but pages answered again for a fault (${run})`,
            `pages ${JSON.stringify(r.pages)}, answered again ${again(r)}, faults ${r.postcopy?.faults}`,
            'sent = total + answered again, resent = answered again ≤ faults',
          ),
        );
      }
    }
    await annotate(
      `post-copy downtime, every run: ${runs}; pre-copy downtime, every run: ${show(everyRun(precopy, downtime), 'ms')}; ` +
        `post-copy wire, every run: ${show(everyRun(postcopy, wire), 'MiB')}`,
    );
    assertClaims(verdicts);
  });

  it('3. hybrid lies between: bytes between post-copy’s and pre-copy’s, downtime below non-converging pre-copy’s', async ({
    annotate,
  }) => {
    const { precopy, postcopy, hybrid } = await dirtyRateMatrix();
    // Conservative bounds from the runs at the high rate: hybrid must move more bytes than every
    // post-copy run and fewer than every pre-copy run, and have less downtime than every pre-copy run.
    const preBytes = { label: 'pre-copy', value: best(precopy.high, wire) };
    const preDowntime = { label: 'pre-copy', value: best(precopy.high, downtime) };
    const postBytes = { label: 'post-copy', value: Math.max(...postcopy.high.map(wire)) };
    const verdicts: Verdict[] = precopy.high.map((pre, i) =>
      verdict(
        pre.switchover?.reason === 'max-rounds' || pre.switchover?.reason === 'not-shrinking',
        `pre-copy at the high dirty rate does not converge (run #${i + 1}; the premise of claim 3)`,
        `switchover ${JSON.stringify(pre.switchover)}, ${pre.rounds.length} rounds`,
        'reason max-rounds or not-shrinking',
      ),
    );
    const seen: string[] = [];
    for (const { label, report } of hybrid) {
      const bytes: Figure = { label, value: report.bytes.wire };
      const down: Figure = { label, value: downtime(report) };
      seen.push(`${label}: ${format(bytes.value, 'MiB')}, ${format(down.value, 'ms')} downtime`);
      verdicts.push(
        between(
          `${label}: bytes between post-copy’s and pre-copy’s at the high rate`,
          bytes,
          postBytes,
          preBytes,
          'MiB',
        ),
        below(`${label}: downtime below pre-copy’s non-converging downtime`, down, preDowntime, 'ms'),
      );
    }
    await annotate(
      `high rate: ${seen.join('; ')}; ${show([postBytes, preBytes], 'MiB')}; ` +
        `pre-copy downtime ${format(preDowntime.value, 'ms')}`,
    );
    assertClaims(verdicts);
  });

  it('4. a capped link lengthens pre-copy in proportion: total ≈ memory ÷ cap', async ({ annotate }) => {
    const pair = await pairOfAgents();
    const caps = [50e6, 25e6] as const;
    const labels = caps.map((cap) => `${cap / 1e6} MB/s`);
    const runs: MigrationReport[][] = caps.map(() => []);
    for (let run = 1; run <= RUNS; run++) {
      for (const [i, cap] of caps.entries()) {
        const what = `${labels[i]!} #${run}`;
        runs[i]!.push(await migrateOnce(pair, what, 'idle', 'precopy', { maxBandwidthBps: cap }));
      }
    }
    const totals = runs.map((reports, i) => ({ label: labels[i]!, value: best(reports, total) }));
    const [fast, slow] = totals as [Figure, Figure];
    const verdicts = [
      near(
        `pre-copy total time scales with the cap (best of ${RUNS})`,
        { label: `total ${slow.label} ÷ total ${fast.label}`, value: slow.value / fast.value },
        { label: 'cap ratio', value: caps[0] / caps[1] },
        'x',
        { min: 0.75, max: 1.25 },
        show(totals, 'ms'),
      ),
      ...caps.map((cap, i) =>
        near(
          `pre-copy total time ≈ memory ÷ cap at ${totals[i]!.label} (best of ${RUNS})`,
          totals[i]!,
          { label: 'memory ÷ cap', value: (memoryBytes / cap) * 1000 },
          'ms',
          { min: 0.97, max: 1.25 },
        ),
      ),
    ];
    const every = runs.flatMap((reports, i) => reports.map((r, j) => `${labels[i]!} #${j + 1} ${breakdown(r)}`));
    await annotate(`idle pre-copy, every run: ${every.join('; ')}`);
    assertClaims(verdicts);
  });
});
