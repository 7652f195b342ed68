/**
 * One agent, both ends: two `livemig agent` processes pass a running VM back and forth,
 * A → B → A → B, in each mode. After every hop the VM arrived intact (the determinism oracle:
 * stopped where it runs, compared with a never-migrated reference at the same step, then
 * resumed), the agent it left keeps only its record (`migrated` in query-vms), and the next hop
 * migrates it back to that agent — which a destination could not do before (`unknown command
 * "migrate"`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ControlClient, type VmInfo } from '@livemig/shared/control';
import type { MigrationMode, MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { checkOracle } from '../../cli/oracle.ts';
import { startAgent, stopAll, type AgentProcess } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';

afterEach(stopAll);

const spec = parseVmSpec({ memory: '64MiB', init: 'random', workload: 'hotset:wss=8MiB,rate=20000', seed: 17 });
const HOPS = 3;

/** Ask `agent` something over its control API, on a connection of its own. */
async function ask<T>(agent: AgentProcess, run: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = await ControlClient.connect(agent.control);
  try {
    return await run(client);
  } finally {
    client.close();
  }
}

function migrate(from: AgentProcess, to: AgentProcess, mode: MigrationMode): Promise<MigrationReport> {
  // Hybrid: one pre-copy round, then post-copy, so every hop really has both phases.
  const params = mode === 'hybrid' ? { postcopyAfterRounds: 1 } : {};
  return ask(from, async (client) => {
    const { migrationId } = await client.request('migrate', { vm: 'vm', to: to.listen, mode, params });
    return followMigration(client, migrationId, { progress: false });
  });
}

function vmsOn(agent: AgentProcess): Promise<VmInfo[]> {
  return ask(agent, async (client) => (await client.request('query-vms', {})).vms);
}

describe.each(['precopy', 'postcopy', 'hybrid'] as const)('%s: a VM migrated A → B → A → B', (mode) => {
  it('arrives intact after every hop, leaves a `migrated` record behind and can migrate back', async () => {
    const vmArgs = ['--vm', 'vm', '--memory', String(spec.memoryBytes), '--init', spec.init];
    vmArgs.push('--workload', spec.workload, '--seed', String(spec.seed));
    const [a, b] = await Promise.all([startAgent('agent', vmArgs), startAgent('agent')]);
    expect(a.role).toBe('agent');
    expect(a.listen).toMatch(/^127\.0\.0\.1:\d+$/);
    let [from, to] = [a, b];
    for (let hop = 1; hop <= HOPS; hop++) {
      const where = `hop ${hop} (${from === a ? 'A → B' : 'B → A'})`;
      const report = await migrate(from, to, mode);
      expectCompleted(report, where);
      expect(report.mode).toBe(mode);
      expect(report.verify.match, where).toBe(true);
      // The agent the VM left keeps only its record; the other runs it.
      expect(await vmsOn(from), where).toEqual([expect.objectContaining({ name: 'vm', state: 'migrated' })]);
      expect(await vmsOn(to), where).toEqual([expect.objectContaining({ name: 'vm', state: 'running' })]);
      // Nothing lost: stop it, compare with a never-migrated reference at that step, resume it.
      const oracle = await checkOracle(to.control, 'vm', spec);
      expect(oracle.migratedDigest, `${where}: oracle at step ${oracle.steps}`).toBe(oracle.referenceDigest);
      const resumed = await ask(to, (client) => client.request('cont', { vm: 'vm' }));
      expect(resumed.state).toBe('running');
      [from, to] = [to, from];
    }
  });
});
