/**
 * One agent, both ends: two `livemig agent` processes pass a running VM back and forth,
 * A → B → A → B, in each mode, over mutual TLS with a ticket for every hop (test/helpers/fleet.ts).
 * After every hop the VM arrived intact (the determinism oracle: stopped where it runs, compared
 * with a never-migrated reference at the same step, then resumed), the agent it left keeps only
 * its record (`migrated` in query-vms), and the next hop migrates it back to that agent — which a
 * destination could not do before (`unknown command "migrate"`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MigrationMode } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { useFleet } from '../helpers/fleet.ts';
import { stopAll } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';

const fleet = useFleet();
afterEach(stopAll);
// One pair of agents for the three modes: each test boots its VM on A, and it is destroyed on both after it.
const pair = useSharedPair({ start: () => fleet.pair(), ask: fleet.ask });

const spec = parseVmSpec({ memory: '64MiB', init: 'random', workload: 'hotset:wss=8MiB,rate=20000', seed: 17 });
const HOPS = 3;

describe.each(['precopy', 'postcopy', 'hybrid'] as const)('%s: a VM migrated A → B → A → B', (mode: MigrationMode) => {
  it('arrives intact after every hop, leaves a `migrated` record behind and can migrate back', async () => {
    const [a, b] = await pair.boot('vm', spec);
    expect(a.role).toBe('agent');
    expect(a.listen).toMatch(/^127\.0\.0\.\d+:\d+$/);
    // Hybrid: one pre-copy round, then post-copy, so every hop really has both phases.
    const params = mode === 'hybrid' ? { postcopyAfterRounds: 1 } : {};
    let [from, to] = [a, b];
    for (let hop = 1; hop <= HOPS; hop++) {
      const where = `hop ${hop} (${from === a ? 'A → B' : 'B → A'})`;
      const report = await fleet.migrate(from, to, { vm: 'vm', mode, params });
      expectCompleted(report, where);
      expect(report.mode).toBe(mode);
      expect(report.verify.match, where).toBe(true);
      expect(report.security, where).toMatchObject({ tls: '1.3', sourceName: from.name, destName: to.name });
      // The agent the VM left keeps only its record; the other runs it.
      expect(await fleet.vms(from), where).toEqual([expect.objectContaining({ name: 'vm', state: 'migrated' })]);
      expect(await fleet.vms(to), where).toEqual([expect.objectContaining({ name: 'vm', state: 'running' })]);
      // Nothing lost: stop it, compare with a never-migrated reference at that step, resume it.
      const oracle = await fleet.oracle(to, 'vm', spec);
      expect(oracle.migratedDigest, `${where}: oracle at step ${oracle.steps}`).toBe(oracle.referenceDigest);
      const resumed = await fleet.ask(to, (client) => client.request('cont', { vm: 'vm' }), 'operator');
      expect(resumed.state).toBe('running');
      [from, to] = [to, from];
    }
  });
});
