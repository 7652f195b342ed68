/**
 * The shaped-link lab (issue 6, first part): hosts in network namespaces on a bridge, links
 * shaped with tbf (rate), nftables or netem (loss) and netem or a userspace delay relay (delay).
 * Before a test trusts a profile, the link is measured and must be within 20% of it; then
 * pre-copy migrations run across it with their transfer time checked against bytes ÷ rate.
 * Needs what every profile needs (root, iproute2, and nftables where the kernel has no netem:
 * cli/lab/prerequisites.ts); elsewhere every test here is skipped, naming all that is missing (in
 * CI as root a missing one fails the suite: test/helpers/prerequisites.ts). `lab up`/`lab down`
 * and the prerequisite errors are tested in lab-ownership.integration.test.ts.
 */
import { afterEach, expect, it } from 'vitest';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { startDelayRelay, type DelayRelay } from '../../cli/lab/delay-relay.ts';
import { measureCheckedLink, profileDeparture } from '../../cli/lab/measure.ts';
import { withLabMigration } from '../../cli/lab/lab-migration.ts';
import { PROFILES } from '../../cli/lab/profiles.ts';
import { shapeLab } from '../../cli/lab/shape.ts';
import { Lab, labUnavailable } from '../../cli/lab/topology.ts';
import { checkOracle } from '../../cli/oracle.ts';
import { describeWhenAvailable } from '../helpers/prerequisites.ts';
import { runCli, stopAll, track } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';

let lab: Lab | undefined;
afterEach(async () => {
  await stopAll();
  lab?.destroy();
  lab = undefined;
});

describeWhenAvailable('shaped links in network namespaces', labUnavailable(), () => {
  it.each(Object.keys(PROFILES))('profile %s: the measured link is within 20 percent of the profile', async (name) => {
    const profile = PROFILES[name]!;
    lab = Lab.create(['source', 'dest']);
    const l = lab;
    const mechanisms = shapeLab(l, profile);
    const relays: DelayRelay[] = [];
    try {
      // Measured again (twice at most) while only slower than the profile: the probe shares the
      // cores with the suite; faster than the profile is refused at once (measure.ts).
      const measured = await measureCheckedLink(l, 'source', 'dest', profile, async (port) => {
        if (mechanisms.delay !== 'relay')
          return { address: `${l.host('dest').address}:${port}`, close: async () => {} };
        const relay = await startDelayRelay({
          listenHost: l.controllerAddress,
          target: { host: l.host('dest').address, port },
          oneWayMs: profile.rttMs / 2,
        });
        relays.push(relay);
        return relay;
      });
      process.stdout.write(`[lab] ${name}: ${JSON.stringify(mechanisms)} measured ${JSON.stringify(measured)}\n`);
      expect(profileDeparture(measured, profile)).toBeNull();
      expect(mechanisms.rate).toBe('tbf');
    } finally {
      for (const relay of relays) await relay.close();
    }
  });

  // The VM's size per profile: long enough that the fixed costs inside the rounds (the first and
  // last round trips, the last round's few pages) are a few % of the transfer. lan (125 MB/s):
  // 128 MiB is ~1.1 s, and at that rate the two shared cores, not the link, already set the pace
  // (seen 1.40×). wan (12.5 MB/s): 64 MiB is ~5.4 s (128 MiB took 11 s of the file's budget and
  // was seen at 1.05×; the extra RTT-bound costs, ~0.5 s, are ≤ 10 % of 5.4 s).
  it.each([
    ['lan', '128MiB'],
    ['wan', '64MiB'],
  ])('pre-copy of an idle VM over %s (%s) takes 0.9–1.5× bytes ÷ rate; the oracle holds', async (name, memory) => {
    const profile = PROFILES[name]!;
    const spec = parseVmSpec({ memory, init: 'random', workload: 'idle', seed: 17 });
    await withLabMigration({ profile, spec, onSpawn: track }, async (run) => {
      const { report, mechanisms } = run;
      expectCompleted(report);
      const transferMs = report.rounds.reduce((sum, r) => sum + r.ms, 0);
      const boundMs = (report.bytes.wire / profile.rateBps) * 1000;
      process.stdout.write(
        `[lab] ${name} pre-copy: ${JSON.stringify(mechanisms)} measured ${JSON.stringify(run.measured)} ` +
          `transfer ${transferMs.toFixed(0)} ms, bound ${boundMs.toFixed(0)} ms (${(transferMs / boundMs).toFixed(2)}×), ` +
          `downtime ${report.times.downtimeMs!.toFixed(1)} ms\n`,
      );
      expect(transferMs / boundMs).toBeGreaterThanOrEqual(0.9);
      expect(transferMs / boundMs).toBeLessThanOrEqual(1.5);
      expect(report.times.downtimeMs!).toBeGreaterThan(0);
      const oracle = await checkOracle(run.dest.control, 'vm', spec);
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    });
  });

  it('post-copy over wan: every fault costs at least a round trip; the oracle holds', async () => {
    const profile = PROFILES.wan!;
    const spec = parseVmSpec({ memory: '64MiB', init: 'random', workload: 'hotset:wss=8MiB,rate=5000', seed: 19 });
    await withLabMigration({ profile, spec, mode: 'postcopy', onSpawn: track }, async (run) => {
      const { report } = run;
      expectCompleted(report);
      const latency = report.postcopy?.faultLatencyMs;
      process.stdout.write(
        `[lab] wan post-copy: ${JSON.stringify(run.mechanisms)} RTT ${run.measured.rttMs.toFixed(1)} ms, ` +
          `faults ${report.postcopy?.faults}, latency ${JSON.stringify(latency)}, downtime ${report.times.downtimeMs!.toFixed(1)} ms\n`,
      );
      expect(report.postcopy!.faults).toBeGreaterThan(0);
      // A fault is a request and an answer across the link: never faster than one RTT.
      expect(latency!.p50).toBeGreaterThanOrEqual(run.measured.rttMs * 0.9);
      const oracle = await checkOracle(run.dest.control, 'vm', spec);
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    });
  });

  it('livemig lab run works from the command line', async () => {
    const run = await runCli(['lab', 'run', '--profile', 'lan', '--memory', '16MiB', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as {
      mechanisms: { rate: string };
      report: MigrationReport;
    };
    expect(result.mechanisms.rate).toBe('tbf');
    expectCompleted(result.report);
    expect(result.report.oracle?.match).toBe(true);
    // Secure by default: mutual TLS between the lab's agents, with a ticket.
    expect(result.report.security).toMatchObject({ tls: '1.3', sourceName: 'source', destName: 'dest', ticket: true });
    const bad = await runCli(['lab', 'run', '--profile', 'mars']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown profile "mars"/);
  });
});
