/**
 * Post-copy across a real link that goes down: the destination agent runs in a network
 * namespace joined by a veth pair, and the test takes that link down for a few seconds in the
 * middle of post-copy. The migration must ride it out (TCP retransmits, or post-copy recovery
 * reconnects) and the determinism oracle must still hold. The destination binds an address beyond
 * loopback, so both agents speak mutual TLS (test/helpers/fleet.ts): the recovery reconnects too.
 * Needs root: elsewhere it is skipped, saying why (in CI as root it fails instead:
 * test/helpers/prerequisites.ts).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { useFleet } from '../helpers/fleet.ts';
import { createPairLab, netnsUnavailable, type PairLab } from '../helpers/netns.ts';
import { describeWhenAvailable } from '../helpers/prerequisites.ts';
import { stopAll } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();

describeWhenAvailable('post-copy over a veth link that goes down', netnsUnavailable(), () => {
  let lab: PairLab;
  beforeAll(() => {
    lab = createPairLab();
  });
  afterAll(async () => {
    await stopAll();
    lab?.remove();
  });

  it('link down for 3 s mid-post-copy: the migration completes and the oracle holds', async () => {
    const spec = parseVmSpec({ memory: '32MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 13 });
    const [dest, source] = await Promise.all([
      fleet.agent({ address: lab.farAddress, wrap: lab.wrap }),
      fleet.source('vm', spec),
    ]);
    const client = await fleet.connect(source, 'operator');
    try {
      const params = { maxBandwidthBps: 4e6 };
      const migrationId = await fleet.start(client, dest, { vm: 'vm', mode: 'postcopy', params });
      const report = followMigration(client, migrationId, { progress: false });
      await waitUntil(
        async () => {
          const info = await client.request('query-migrate', { migrationId });
          return info?.direction === 'outgoing' && info.status === 'postcopy' && info.transferred > 4 << 20;
        },
        { what: 'post-copy under way' },
      );
      await lab.flap(3000);
      const done = await report;
      expectCompleted(done);
      expect(done.verify.match).toBe(true);
      expect(done.security).toMatchObject({ tls: '1.3', sourceName: source.name, destName: lab.farAddress });
      const oracle = await fleet.oracle(dest, 'vm', spec);
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    } finally {
      client.close();
    }
  });
});
