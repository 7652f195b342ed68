/**
 * One migration across a shaped lab link, start to finish: check that this host has everything
 * the profile (and a service's own address) needs, naming all that is missing at once
 * (prerequisites.ts), build the lab (hosts `source` and `dest`), shape it to the profile,
 * measure what the link really gives (more than 20% off the profile fails the run: shaping must
 * be real), start the agents inside their namespaces, put the delay relay on the path when the
 * kernel has no netem, migrate, let the caller inspect the result while everything still runs,
 * then tear it all down. Used by `livemig lab run`, the lab tests and `npm run bench -- links` /
 * `-- security` (`secure`: agents with mutual TLS and a ticket, see secure.ts). A VM with a disk
 * migrates it as `params.storage` says; for `shared` both agents get one disk directory (a
 * temporary one, removed at teardown), as two hosts would mount the same shared storage.
 */
import type { ControlClient, MigrateParams } from '@livemig/shared/control';
import type { MigrationMode, MigrationReport } from '@livemig/shared/report';
import type { VmSpec } from '@livemig/shared/vm';
import type { AgentProcess, StartAgentOptions } from '../agent-process.ts';
import { parseHostPort } from '@livemig/shared';
import { followMigration } from '../follow-migration.ts';
import { networkSection, startProbe } from '../probe/during.ts';
import { withLabAgents } from './lab-agents.ts';
import type { LinkMeasurement } from './measure.ts';
import type { LinkProfile } from './profiles.ts';
import type { ShapingMechanisms } from './shape.ts';
import type { Lab } from './topology.ts';

export interface LabMigration {
  lab: Lab;
  profile: LinkProfile;
  mechanisms: ShapingMechanisms;
  measured: LinkMeasurement;
  report: MigrationReport;
  source: AgentProcess;
  dest: AgentProcess;
  /** With `service`: the VM's address (its own IP on the lab link, moved by macvlan). */
  vmAddress?: string;
  /** A control connection to one agent as the lab's admin (wss when `secure`), e.g. for the oracle. */
  admin(side: 'source' | 'dest'): Promise<ControlClient>;
}

export interface LabMigrationOptions {
  profile: LinkProfile;
  spec: VmSpec;
  mode?: MigrationMode | 'auto';
  params?: MigrateParams;
  /** Called with every agent process as it starts (tests track them for cleanup). */
  onSpawn?: StartAgentOptions['onSpawn'];
  /**
   * A VM with a service (spec.workload kv): it gets its own IP on the lab link (a macvlan,
   * --vm-link eth0 on both agents) at this UDP port, and a client probes it from the controller
   * every `probeIntervalMs` (default 1) during the migration; the report gets `network`.
   */
  service?: { port: number; probeIntervalMs?: number };
  /** Agents with mutual TLS (a throwaway PKI, see secure.ts), the migration with a ticket. @default false */
  secure?: boolean;
}

/** Run one migration across a fresh lab shaped to the profile; `inspect` sees it before teardown. */
export async function withLabMigration<T>(
  options: LabMigrationOptions,
  inspect: (run: LabMigration) => Promise<T>,
): Promise<T> {
  const { spec } = options;
  const service = options.service;
  return withLabAgents(
    {
      profile: options.profile,
      ...(options.onSpawn ? { onSpawn: options.onSpawn } : {}),
      vmLink: service !== undefined,
      sharedDisks: options.params?.storage === 'shared',
      ...(options.secure ? { secure: true } : {}),
      sourceArgs: (vmAddress) => [
        ...['--vm', 'vm', '--memory', String(spec.memoryBytes)],
        ...['--init', spec.init, '--workload', spec.workload, '--seed', String(spec.seed)],
        ...(service ? ['--nic', `${vmAddress}:${service.port}`] : []),
        ...(spec.disk === null ? [] : ['--disk', String(spec.disk)]),
      ],
    },
    async (env) => {
      const { source, dest } = env;
      const vmAddress = service ? `${env.lab.vmAddress()}:${service.port}` : undefined;
      const client = await env.control('source', 'operator');
      let report: MigrationReport;
      const probe = vmAddress
        ? startProbe({ target: parseHostPort(vmAddress), intervalMs: service?.probeIntervalMs })
        : null;
      try {
        await probe?.answered;
        const { migrationId } = await client.request('migrate', {
          vm: 'vm',
          to: env.to,
          mode: options.mode ?? 'precopy',
          params: options.params ?? {},
          ...(await env.prepare('vm')),
        });
        report = await followMigration(client, migrationId, { progress: false });
        if (probe) report = { ...report, network: networkSection(await probe.finish(), report) };
      } catch (error) {
        await probe?.abandon();
        throw error;
      } finally {
        client.close();
      }
      return await inspect({
        lab: env.lab,
        profile: env.profile,
        mechanisms: env.mechanisms,
        measured: env.measured,
        report,
        source,
        dest,
        ...(vmAddress ? { vmAddress } : {}),
        admin: (side) => env.control(side, 'admin'),
      });
    },
  );
}
