/**
 * `npm run bench -- links`: pre-copy and post-copy of a 256 MiB VM (random memory, 16 MiB hot set
 * written at 5 000 pages/s) across the lab's `lan`, `wan` and `constrained` profiles (network
 * namespaces, tbf rate, nftables/netem loss, netem or a userspace relay for delay — each run
 * records which). Every figure sits next to the link's bound measured in the same run: bytes on
 * the wire ÷ the rate the link actually gave (measured before the migration).
 *
 * Needs root; elsewhere it writes no figures and says why. Environment:
 * LIVEMIG_BENCH_LINKS_PROFILES (comma list, default lan,wan,constrained).
 */
import { withLabMigration } from '../cli/lab/lab-migration.ts';
import { PROFILES } from '../cli/lab/profiles.ts';
import { labUnavailable } from '../cli/lab/topology.ts';
import { parseVmSpec } from '../shared/src/vm/index.ts';
import { downtimeOf } from '../shared/src/report/index.ts';
import { ratioRow, type BenchRow, type BenchSection } from './harness.ts';

const WANTED = (process.env.LIVEMIG_BENCH_LINKS_PROFILES ?? 'lan,wan,constrained').split(',').map((s) => s.trim());
const SPEC = parseVmSpec({ memory: '256MiB', init: 'random', workload: 'hotset:wss=16MiB,rate=5000', seed: 5 });

const section: BenchSection = {
  id: 'links',
  title: 'Migrations across shaped links (lab: lan, wan, constrained)',
  description:
    '`npm run bench -- links` (bench/links.bench.ts): 256 MiB random VM, hotset:wss=16MiB,rate=5000, one run per ' +
    'mode and profile between agents in network namespaces; the bound is bytes on the wire ÷ the measured rate.',
  async run() {
    const why = labUnavailable();
    if (why) return { rows: [], notes: [`Not measured: ${why}.`] };
    const rows: BenchRow[] = [];
    const notes: string[] = [];
    for (const name of WANTED) {
      const profile = PROFILES[name];
      if (!profile) throw new Error(`unknown profile ${name}`);
      for (const mode of ['precopy', 'postcopy'] as const) {
        await withLabMigration({ profile, spec: SPEC, mode }, async ({ report, mechanisms, measured }) => {
          if (report.outcome !== 'completed') throw new Error(`${name} ${mode}: ${JSON.stringify(report.error)}`);
          const boundMs = (report.bytes.wire / measured.rateBps) * 1000;
          const label = `${name} ${mode}`;
          rows.push(
            ratioRow(
              { name: `${label}: total time`, value: report.times.totalMs, unit: 'ms' },
              { name: 'bytes on the wire ÷ measured rate', value: boundMs, unit: 'ms' },
            ),
            { name: `${label}: downtime`, value: downtimeOf(report), unit: 'ms' },
            { name: `${label}: bytes on the wire`, value: report.bytes.wire / 2 ** 20, unit: 'MiB' },
          );
          if (report.postcopy?.faultLatencyMs) {
            rows.push({ name: `${label}: fault latency p50`, value: report.postcopy.faultLatencyMs.p50, unit: 'ms' });
          }
          notes.push(
            `${label}: rate by ${mechanisms.rate}, loss by ${mechanisms.loss}, delay by ${mechanisms.delay}; ` +
              `measured ${(measured.rateBps / 1e6).toFixed(2)} MB/s, RTT ${measured.rttMs.toFixed(1)} ms ` +
              `(profile: ${profile.description}); ${report.rounds.length} pre-copy rounds.`,
          );
        });
      }
    }
    notes.push(
      'Loss hurts the measured TCP rate little here because, without netem, the delay relay terminates TCP: ' +
        'the lossy hops have a short RTT, so retransmissions are cheap. On a kernel with netem, loss and delay act on one TCP path.',
    );
    return { rows, notes };
  },
};

export default section;
