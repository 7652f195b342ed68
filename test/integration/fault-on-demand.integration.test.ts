/**
 * `fault-on-demand` (agent-source/src/migration/fault-on-demand.ts), the ways it can go wrong, on
 * real agents: a destination that never answers FaultOpen (a man in the middle turns it into a
 * Heartbeat, which the destination passes over) holds the switch to post-copy only until the
 * deadline — then the migration fails with ERR_TIMEOUT before the switch, and the VM runs on at
 * the source, intact; and a destination that does not offer the capability gets the fault thread
 * at Setup, as before it existed, and the hybrid completes through it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KNOWN_CAPABILITIES, msg, MsgType } from '@livemig/shared/protocol';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { FAULT_LISTENING_TIMEOUT_MS } from '../../agent-source/src/migration/fault-on-demand.ts';
import { followMigration } from '../../cli/follow-migration.ts';
import { checkOracle } from '../../cli/oracle.ts';
import { startRewritingRelay } from '../helpers/rewriting-relay.ts';
import { ask, hostPort, vmStates } from '../helpers/plain-agents.ts';
import { startAgent, startSourceWithVm, stopAll } from '../helpers/processes.ts';
import { explainReport, expectCompleted, expectOutcome } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

afterEach(stopAll);

const spec = parseVmSpec({ memory: '32MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 41 });

/** A hybrid that switches to post-copy after its first round. */
async function hybrid(source: Parameters<typeof ask>[0], to: string): Promise<MigrationReport> {
  return ask(source, async (client) => {
    const { migrationId } = await client.request('migrate', {
      vm: 'vm',
      to,
      mode: 'hybrid',
      params: { postcopyAfterRounds: 1 },
    });
    return followMigration(client, migrationId, { progress: false });
  });
}

describe('fault-on-demand', () => {
  it(
    'FaultOpen never answered: ERR_TIMEOUT before the switch; the VM runs on at the source, intact',
    async () => {
      const [source, dest] = await Promise.all([startSourceWithVm('vm', spec), startAgent('agent')]);
      let swallowed = 0;
      const relay = await startRewritingRelay(hostPort(dest.listen), (message) => {
        if (message.type !== MsgType.FaultOpen) return message;
        swallowed++;
        return msg.heartbeat(1_000_000 + swallowed);
      });
      try {
        const started = performance.now();
        const report = await hybrid(source, relay.address);
        const ms = performance.now() - started;
        expect(swallowed, 'the source asked for the fault thread').toBe(1);
        expectOutcome(report, 'failed');
        expect(report.error?.code, explainReport(report)).toBe('ERR_TIMEOUT');
        expect(report.error?.message).toMatch(/did not say where its fault thread listens/);
        expect(ms, 'it waited for the deadline').toBeGreaterThanOrEqual(FAULT_LISTENING_TIMEOUT_MS);
        expect(report.vmRunsOn).toBe('source');
        expect(report.postcopy, 'it never switched').toBeUndefined();
        await waitUntil(async () => (await vmStates(dest)).length === 0, { what: 'the destination discards its copy' });
        expect(await vmStates(source)).toEqual(['running']);
        const oracle = await checkOracle(source.control, 'vm', spec);
        expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
      } finally {
        await relay.close();
      }
    },
    FAULT_LISTENING_TIMEOUT_MS + 60_000,
  );

  it('a destination without it starts the fault thread at Setup; the hybrid completes through it', async () => {
    const offered = Object.keys(KNOWN_CAPABILITIES).filter((c) => c !== 'fault-on-demand');
    const [source, dest] = await Promise.all([
      startSourceWithVm('vm', spec),
      startAgent('agent', ['--capabilities', offered.join(',')]),
    ]);
    const report = await hybrid(source, dest.listen);
    expectCompleted(report);
    expect(report.postcopy, 'switched to post-copy').toBeDefined();
    expect(report.postcopy!.faultThread, 'the fault thread served the faults').toBe(true);
    expect(await vmStates(dest)).toEqual(['running']);
    const oracle = await checkOracle(dest.control, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });
});
