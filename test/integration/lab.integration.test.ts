/**
 * The shaped-link lab (issue 6, first part): hosts in network namespaces on a bridge, links
 * shaped with tbf (rate), nftables or netem (loss) and netem or a userspace delay relay (delay).
 * Before a test trusts a profile, the link is measured and must be within 20% of it; then
 * pre-copy migrations run across it with their transfer time checked against bytes ÷ rate.
 * Needs root; elsewhere every test here is skipped, saying why.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ControlClient } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { startDelayRelay, type DelayRelay } from '../../cli/lab/delay-relay.ts';
import { checkProfile, measureLink } from '../../cli/lab/measure.ts';
import { PROFILES, type LinkProfile } from '../../cli/lab/profiles.ts';
import { shapeLab, type ShapingMechanisms } from '../../cli/lab/shape.ts';
import { Lab, labUnavailable } from '../../cli/lab/topology.ts';
import { startAgentProcess } from '../../cli/agent-process.ts';
import { followMigration } from '../../cli/follow-migration.ts';
import { checkOracle } from '../helpers/oracle.ts';
import { stopAll } from '../helpers/processes.ts';

const unavailable = labUnavailable();
if (unavailable) process.stdout.write(`[skip] lab tests: ${unavailable}\n`);

let lab: Lab | undefined;
const relays: DelayRelay[] = [];
afterEach(async () => {
  await stopAll();
  for (const relay of relays.splice(0)) await relay.close();
  lab?.destroy();
  lab = undefined;
});

/** Build a two-host lab shaped to `profile`; `via` puts the delay relay on a path when netem is missing. */
function shapedLab(profile: LinkProfile): { lab: Lab; mechanisms: ShapingMechanisms } {
  lab = Lab.create(['source', 'dest']);
  return { lab, mechanisms: shapeLab(lab, profile) };
}

async function pathTo(l: Lab, mechanisms: ShapingMechanisms, profile: LinkProfile, port: number): Promise<string> {
  const dest = l.host('dest').address;
  if (mechanisms.delay !== 'relay') return `${dest}:${port}`;
  const relay = await startDelayRelay({
    listenHost: l.controllerAddress,
    target: { host: dest, port },
    oneWayMs: profile.rttMs / 2,
  });
  relays.push(relay);
  return relay.address;
}

describe.skipIf(unavailable !== undefined)('shaped links in network namespaces', () => {
  it.each(Object.keys(PROFILES))('profile %s: the measured link is within 20 percent of the profile', async (name) => {
    const profile = PROFILES[name]!;
    const { lab: l, mechanisms } = shapedLab(profile);
    const measured = await measureLink(l, 'source', 'dest', profile, (port) =>
      pathTo(l, mechanisms, profile, port).then((address) => ({ address, close: async () => {} })),
    );
    process.stdout.write(`[lab] ${name}: ${JSON.stringify(mechanisms)} measured ${JSON.stringify(measured)}\n`);
    expect(() => checkProfile(measured, profile)).not.toThrow();
    expect(mechanisms.rate).toBe('tbf');
  });

  it.each(['lan', 'wan'])(
    'pre-copy of an idle 256 MiB VM over %s takes 0.9–1.5× bytes ÷ rate; the oracle holds',
    async (name) => {
      const profile = PROFILES[name]!;
      const { lab: l, mechanisms } = shapedLab(profile);
      const spec = parseVmSpec({ memory: '256MiB', init: 'random', workload: 'idle', seed: 17 });
      const destHost = l.host('dest');
      const sourceHost = l.host('source');
      const [dest, source] = await Promise.all([
        startAgentProcess('dest', {
          wrap: l.wrap('dest'),
          args: ['--listen', `${destHost.address}:0`, '--control', `${destHost.address}:0`],
        }),
        startAgentProcess('source', {
          wrap: l.wrap('source'),
          args: [
            '--control',
            `${sourceHost.address}:0`,
            ...['--vm', 'vm', '--memory', String(spec.memoryBytes), '--init', spec.init],
            ...['--workload', spec.workload, '--seed', String(spec.seed)],
          ],
        }),
      ]);
      try {
        const to = await pathTo(l, mechanisms, profile, Number(dest.listen.split(':')[1]));
        const client = await ControlClient.connect(source.control);
        let report: MigrationReport;
        try {
          const { migrationId } = await client.request('migrate', { vm: 'vm', to, params: {} });
          report = await followMigration(client, migrationId, { progress: false });
        } finally {
          client.close();
        }
        expect(report.outcome, JSON.stringify(report.error)).toBe('completed');
        const transferMs = report.rounds.reduce((sum, r) => sum + r.ms, 0);
        const boundMs = (report.bytes.wire / profile.rateBps) * 1000;
        process.stdout.write(
          `[lab] ${name} pre-copy: ${JSON.stringify(mechanisms)} transfer ${transferMs.toFixed(0)} ms, ` +
            `bound ${boundMs.toFixed(0)} ms (${(transferMs / boundMs).toFixed(2)}×), downtime ${report.times.downtimeMs.toFixed(1)} ms\n`,
        );
        expect(transferMs / boundMs).toBeGreaterThanOrEqual(0.9);
        expect(transferMs / boundMs).toBeLessThanOrEqual(1.5);
        expect(report.times.downtimeMs).toBeGreaterThan(0);
        const oracle = await checkOracle(dest.control, 'vm', spec);
        expect(oracle.digest).toBe(oracle.referenceDigest);
      } finally {
        await Promise.all([dest.stop(), source.stop()]);
      }
    },
  );
});
