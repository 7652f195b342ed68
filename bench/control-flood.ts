/**
 * The security section's control-flood runs (issue 13: a migration in flight keeps its pace
 * while clients flood the control port): one migration between fresh secure agents (mutual TLS
 * on both planes, a ticket; cli/lab/secure.ts), unloaded or with admin clients flooding the
 * source's control port (cli/control-flood.ts: `digest` of the migrating VM and `query-vms`, each
 * in its own loop; from a process of their own at nice 19) from before the migrate command until the report — the scenario of
 * test/integration/control-flood.integration.test.ts, with fresh agents for every migration as in
 * the rest of the section.
 */
import type { MigrationReport } from '@livemig/shared/report';
import { withAgentPair } from '../cli/agent-process.ts';
import { floodControlApart, type FloodTally } from '../cli/control-flood.ts';
import { followMigration } from '../cli/follow-migration.ts';
import { prepareIncoming, secureAgentArgs, SECURE_NAMES } from '../cli/lab/secure.ts';
import type { ThrowawayPki } from '../cli/throwaway-pki.ts';

/** The test's VM: big enough that the transfer, not the fixed setup, is most of the time; a pair of runs takes seconds. */
export const FLOOD_VM = { memory: '256MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 13 } as const;
/** Clients flooding the source's control port (each with a `digest` and a `query-vms` loop). */
export const FLOOD_CLIENTS = 8;

export interface FloodRun {
  report: MigrationReport;
  /** What the flood's clients got (flooded runs only). */
  tally?: FloodTally;
}

/** One migration of FLOOD_VM between fresh secure agents, flooded or not; checked (completed, verified, secure). */
export function floodMigration(pki: ThrowawayPki, flooded: boolean): Promise<FloodRun> {
  const vm = 'flood';
  const pair = { sourceArgs: secureAgentArgs(pki, 'source'), destArgs: secureAgentArgs(pki, 'dest') };
  return withAgentPair(pair, async ({ dest, source }) => {
    const admin = (): ReturnType<ThrowawayPki['connect']> =>
      pki.connect(source.control, SECURE_NAMES.admin, SECURE_NAMES.source);
    const control = await admin();
    try {
      await control.request('create-vm', { name: vm, ...FLOOD_VM });
      // The flood has settled when floodControlApart resolves; the report's times start at the migrate command.
      const flood = flooded
        ? await floodControlApart({
            control: source.control,
            pkiDir: pki.dir,
            name: SECURE_NAMES.admin,
            agentName: SECURE_NAMES.source,
            vm,
            clients: FLOOD_CLIENTS,
          })
        : undefined;
      try {
        const ticket = await prepareIncoming(pki, dest.control, vm);
        const { migrationId } = await control.request('migrate', { vm, to: dest.listen, ...ticket });
        const report = await followMigration(control, migrationId, { progress: false });
        const tally = await flood?.stop();
        if (report.outcome !== 'completed' || !report.verify.match || !report.security) {
          throw new Error(
            `flood bench migration ${report.outcome} (verified ${report.verify.match}, security ${JSON.stringify(report.security)}): ` +
              `${JSON.stringify(report.error)}\n${source.logs()}`,
          );
        }
        return { report, ...(tally ? { tally } : {}) };
      } finally {
        await flood?.stop();
      }
    } finally {
      control.close();
    }
  });
}
