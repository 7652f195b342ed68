/**
 * S1 (idle 1 GiB of random pages, loopback, plaintext, fresh agents each run) migrated with
 * --channels N for each N asked, interleaved run by run so that the machine's load drifts alike
 * over every N: what sets the default number of bulk channels (agent-source params.ts
 * DEFAULT_CHANNELS). Prints each run, then the medians.
 *
 *   npx tsx bench/multifd-s1.ts [N …]            (default 1 2 3)
 *   LIVEMIG_BENCH_MULTIFD_S1_RUNS=3              runs per N
 */
import { migrateOnce, S1 } from './bench-migrate.ts';

const counts = process.argv.slice(2).map(Number);
const channels = counts.length > 0 ? counts : [1, 2, 3];
const runs = Number(process.env.LIVEMIG_BENCH_MULTIFD_S1_RUNS ?? 3);

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

const figures = new Map<number, { total: number[]; round0: number[]; cpu: number[] }>(
  channels.map((n) => [n, { total: [], round0: [], cpu: [] }]),
);
for (let run = 0; run < runs; run++) {
  for (const n of channels) {
    const { report, cpu } = await migrateOnce({ ...S1.vm, params: { channels: n } });
    if (report.channels?.count !== n) {
      throw new Error(`--channels ${n}: the report says ${JSON.stringify(report.channels)}`);
    }
    const f = figures.get(n)!;
    f.total.push(report.times.totalMs);
    f.round0.push(report.rounds[0]?.ms ?? NaN);
    f.cpu.push(cpu.source + cpu.dest);
    console.log(
      `run ${run + 1} N=${n}: total ${report.times.totalMs.toFixed(0)} ms, round 0 ${(report.rounds[0]?.ms ?? NaN).toFixed(0)} ms, ` +
        `downtime ${report.times.downtimeMs?.toFixed(1)} ms, CPU ${cpu.source} + ${cpu.dest} ms`,
    );
  }
}
for (const [n, f] of figures) {
  console.log(
    `N=${n}: total median ${median(f.total).toFixed(0)} ms (${f.total.map((v) => v.toFixed(0)).join(' / ')}), ` +
      `round 0 median ${median(f.round0).toFixed(0)} ms, CPU median ${median(f.cpu).toFixed(0)} ms`,
  );
}
