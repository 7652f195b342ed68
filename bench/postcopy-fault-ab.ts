/**
 * Post-copy fault latency, setups of the fault path side by side in one run (the source's fault
 * worker off and on, the fault threads' priority raised or not): the
 * `npm run bench -- postcopy` scenario (1 GiB random, hotset:wss=64MiB,rate=50000, loopback, full
 * background push), fresh agents each run, the setups interleaved (off, on, off, on, …) so a
 * change of load on this shared machine hits both alike. Off = LIVEMIG_SOURCE_FAULT_WORKER=off in
 * the agents' environment: the source answers PageRequests on its main thread, as before the worker.
 *
 *   npx tsx bench/postcopy-fault-ab.ts [runs per setup, default 3] [memory, default 1GiB] [workload] [setups]
 *
 * setups: comma-separated names of ENVS below, default off,nice: the source's main thread answering
 * at default priority (as before the fault worker) against the fault path as shipped.
 *
 * Prints one line per run (fault latency p50/p99/max as the destination measured it, faults, pages
 * fetched on demand and answered again, total time, the 1-minute load average as the run ended) and
 * the medians per setup; then, from the agents' logs, where a fault's time went at p50/p99: the
 * destination noticing the fault, its request → the answer's first byte, and (worker on) the
 * source's worker from reading a request to queuing its answer.
 */
import { loadavg } from 'node:os';
import { parseSize } from '@livemig/shared';
import { FAULT_WORKER_ENV } from '@livemig/agent-source';
import { ControlClient } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { withAgentPair, type AgentProcess } from '../cli/agent-process.ts';
import { followMigration } from '../cli/follow-migration.ts';
import { median } from './harness.ts';

const RUNS = Number(process.argv[2] ?? 3);
const MEMORY = parseSize(process.argv[3] ?? '1GiB');
const WORKLOAD = process.argv[4] ?? 'hotset:wss=64MiB,rate=50000';
/**
 * Each setup's environment for both agents: off = the source answers on its main thread, on = its
 * fault worker answers; `nice` variants with the fault threads' priority raised (fault-priority.mjs,
 * the default), the others without. `nice` is the fault path as shipped.
 */
const ENVS: Record<string, Record<string, string>> = {
  off: { [FAULT_WORKER_ENV]: 'off', LIVEMIG_FAULT_THREAD_NICE: '0' },
  on: { [FAULT_WORKER_ENV]: 'on', LIVEMIG_FAULT_THREAD_NICE: '0' },
  nice: { [FAULT_WORKER_ENV]: 'on', LIVEMIG_FAULT_THREAD_NICE: '-10' },
  offnice: { [FAULT_WORKER_ENV]: 'off', LIVEMIG_FAULT_THREAD_NICE: '-10' },
  nice5: { [FAULT_WORKER_ENV]: 'on', LIVEMIG_FAULT_THREAD_NICE: '-5' },
};
const SETUPS = (process.argv[5] ?? 'off,nice').split(',');

interface Run {
  setup: string;
  p50: number;
  p99: number;
  max: number;
  faults: number;
  fetched: number;
  again: number;
  totalMs: number;
  load: number;
  /** From the logs: [p50, p99] ms of each part, NaN where not logged. */
  notice: [number, number];
  requestToAnswer: [number, number];
  worker: [number, number];
}

/** p50 and p99 of the first log line with `event` (fields p50/p99, or `key`'s p50/p99). */
function logged(agent: AgentProcess, event: string, key?: string): [number, number] {
  for (const line of agent.logs().split('\n')) {
    if (!line.includes(`"event":"${event}"`)) continue;
    const fields = JSON.parse(line) as Record<string, { p50?: number; p99?: number } | number | undefined>;
    const at = (key ? fields[key] : fields) as { p50?: number; p99?: number } | undefined;
    return [at?.p50 ?? NaN, at?.p99 ?? NaN];
  }
  return [NaN, NaN];
}

async function migrate(setup: Run['setup']): Promise<Run> {
  Object.assign(process.env, ENVS[setup]); // both agents inherit it
  return withAgentPair({}, async ({ source, dest }) => {
    const control = await ControlClient.connect(source.control);
    try {
      await control.request('create-vm', {
        name: 'bench',
        memory: MEMORY,
        init: 'random',
        workload: WORKLOAD,
        seed: 1,
      });
      const { migrationId } = await control.request('migrate', {
        vm: 'bench',
        to: dest.listen,
        mode: 'postcopy',
        params: { maxBandwidthBps: null },
      });
      const report = await followMigration(control, migrationId, { progress: false });
      if (report.outcome !== 'completed' || !report.verify.match) {
        throw new Error(`migration ${report.outcome}: ${JSON.stringify(report.error)}`);
      }
      // The threads log their figures as they stop (just after the report): wait for the lines.
      const deadline = performance.now() + 5000;
      while (!dest.logs().includes('"event":"fault-thread.answers"') && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (process.env.LIVEMIG_AB_THREADS) console.log(JSON.stringify(report.threads));
      return {
        ...runOf(setup, report),
        notice: logged(dest, 'postcopy.complete', 'faultNoticeDelayMs'),
        requestToAnswer: logged(dest, 'fault-thread.answers'),
        worker: logged(source, 'fault-worker.answers'),
      };
    } finally {
      control.close();
    }
  });
}

function runOf(setup: Run['setup'], report: MigrationReport): Omit<Run, 'notice' | 'requestToAnswer' | 'worker'> {
  const pc = report.postcopy!;
  return {
    setup,
    p50: pc.faultLatencyMs?.p50 ?? NaN,
    p99: pc.faultLatencyMs?.p99 ?? NaN,
    max: pc.faultLatencyMs?.max ?? NaN,
    faults: pc.faults,
    fetched: pc.pagesFetchedOnDemand,
    again: pc.pagesAnsweredAgain ?? 0,
    totalMs: report.times.totalMs,
    load: loadavg()[0]!,
  };
}

const f = (n: number, digits = 2): string => n.toFixed(digits).padStart(8);

function line(r: Run): string {
  return (
    `${r.setup.padEnd(7)} p50 ${f(r.p50)} ms  p99 ${f(r.p99)} ms  max ${f(r.max)} ms  faults ${String(r.faults).padStart(6)}` +
    `  fetched ${String(r.fetched).padStart(6)}  again ${String(r.again).padStart(4)}  total ${f(r.totalMs, 0)} ms  load ${r.load.toFixed(2)}` +
    `\n     notice p50/p99 ${r.notice.map((x) => x.toFixed(2)).join('/')}  request→answer ${r.requestToAnswer.map((x) => x.toFixed(2)).join('/')}` +
    `  source worker ${r.worker.map((x) => x.toFixed(3)).join('/')} ms`
  );
}

const runs: Run[] = [];
console.log(
  `post-copy fault latency, ${SETUPS.join(' vs ')}: ${process.argv[3] ?? '1GiB'} random, ${WORKLOAD}, ${RUNS} runs each`,
);
for (let i = 0; i < RUNS; i++) {
  for (const setup of SETUPS) {
    const run = await migrate(setup);
    runs.push(run);
    console.log(line(run));
  }
}
for (const setup of SETUPS) {
  const mine = runs.filter((r) => r.setup === setup);
  const m = (key: 'p50' | 'p99' | 'max' | 'faults' | 'fetched' | 'again' | 'totalMs' | 'load'): number =>
    median(mine.map((r) => r[key]));
  console.log(
    `median ${setup.padEnd(7)} p50 ${f(m('p50'))} ms  p99 ${f(m('p99'))} ms  max ${f(m('max'))} ms  faults ${m('faults')}` +
      `  fetched ${m('fetched')}  again ${m('again')}  total ${f(m('totalMs'), 0)} ms  load ${m('load').toFixed(2)}`,
  );
}
