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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient, type MigrateParams } from '@livemig/shared/control';
import type { MigrationMode, MigrationReport } from '@livemig/shared/report';
import type { VmSpec } from '@livemig/shared/vm';
import { startAgentProcess, type AgentProcess, type StartAgentOptions } from '../agent-process.ts';
import { parseHostPort } from '@livemig/shared';
import { followMigration } from '../follow-migration.ts';
import { networkSection, startProbe } from '../probe/during.ts';
import { startDelayRelay, type DelayRelay } from './delay-relay.ts';
import { checkHost } from './host-probe.ts';
import { checkProfile, measureLink, type LinkMeasurement } from './measure.ts';
import { labNeeds } from './prerequisites.ts';
import type { LinkProfile } from './profiles.ts';
import { shapeLab, type ShapingMechanisms } from './shape.ts';
import { Lab } from './topology.ts';
import type { ThrowawayPki } from '../throwaway-pki.ts';
import { prepareIncoming, secureAgentArgs, SECURE_NAMES, securePki } from './secure.ts';

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
  const { profile, spec } = options;
  checkHost(
    `run a lab migration over ${profile.name}`,
    labNeeds('run', [profile], { vmAddress: options.service !== undefined }),
  );
  const lab = Lab.create(['source', 'dest']);
  const agents: AgentProcess[] = [];
  const relays: DelayRelay[] = [];
  let pki: ThrowawayPki | undefined;
  let sharedDisks: string | undefined;
  // The agents' path to the destination: through the delay relay when netem cannot add the delay.
  const pathTo = async (mechanisms: ShapingMechanisms, port: number): Promise<string> => {
    const dest = lab.host('dest').address;
    if (mechanisms.delay !== 'relay') return `${dest}:${port}`;
    const relay = await startDelayRelay({
      listenHost: lab.controllerAddress,
      target: { host: dest, port },
      oneWayMs: profile.rttMs / 2,
    });
    relays.push(relay);
    return relay.address;
  };
  try {
    if (options.secure) pki = await securePki();
    // The agents bind lab addresses (not loopback): plaintext only with --insecure.
    const securityArgs = (side: 'source' | 'dest'): string[] => (pki ? secureAgentArgs(pki, side) : ['--insecure']);
    const mechanisms = shapeLab(lab, profile);
    const measured = await measureLink(lab, 'source', 'dest', profile, async (port) => ({
      address: await pathTo(mechanisms, port),
      close: async () => {},
    }));
    // Shaping must be real: a link more than 20% off its profile fails the run here.
    checkProfile(measured, profile);
    const spawn = options.onSpawn ? { onSpawn: options.onSpawn } : {};
    const destHost = lab.host('dest');
    const sourceHost = lab.host('source');
    const service = options.service;
    const vmAddress = service ? `${lab.vmAddress()}:${service.port}` : undefined;
    const vmLink = service ? ['--vm-link', 'eth0'] : [];
    if (options.params?.storage === 'shared') sharedDisks = mkdtempSync(join(tmpdir(), 'livemig-lab-disks-'));
    const diskDir = sharedDisks === undefined ? [] : ['--disk-dir', sharedDisks];
    const [dest, source] = await Promise.all([
      startAgentProcess('dest', {
        wrap: lab.wrap('dest'),
        args: [
          ...['--listen', `${destHost.address}:0`, '--control', `${destHost.address}:0`, ...vmLink, ...diskDir],
          ...securityArgs('dest'),
        ],
        ...spawn,
      }).then((a) => (agents.push(a), a)),
      startAgentProcess('source', {
        wrap: lab.wrap('source'),
        args: [
          ...['--control', `${sourceHost.address}:0`, '--vm', 'vm', '--memory', String(spec.memoryBytes)],
          ...['--init', spec.init, '--workload', spec.workload, '--seed', String(spec.seed)],
          ...(vmAddress ? ['--nic', vmAddress, ...vmLink] : []),
          ...(spec.disk === null ? [] : ['--disk', String(spec.disk), ...diskDir]),
          ...securityArgs('source'),
        ],
        ...spawn,
      }).then((a) => (agents.push(a), a)),
    ]);
    const to = await pathTo(mechanisms, Number(dest.listen.split(':').pop()));
    const client = pki
      ? await pki.connect(source.control, SECURE_NAMES.operator, SECURE_NAMES.source)
      : await ControlClient.connect(source.control);
    let report: MigrationReport;
    const probe = vmAddress
      ? startProbe({ target: parseHostPort(vmAddress), intervalMs: service?.probeIntervalMs })
      : null;
    try {
      await probe?.answered;
      const { migrationId } = await client.request('migrate', {
        vm: 'vm',
        to,
        mode: options.mode ?? 'precopy',
        params: options.params ?? {},
        ...(pki ? await prepareIncoming(pki, dest.control, 'vm') : {}),
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
      lab,
      profile,
      mechanisms,
      measured,
      report,
      source,
      dest,
      ...(vmAddress ? { vmAddress } : {}),
      admin: (side) => {
        const control = (side === 'source' ? source : dest).control;
        return pki ? pki.connect(control, SECURE_NAMES.admin, SECURE_NAMES[side]) : ControlClient.connect(control);
      },
    });
  } finally {
    await Promise.all(agents.map((agent) => agent.stop()));
    for (const relay of relays) await relay.close();
    lab.destroy();
    await pki?.remove();
    if (sharedDisks !== undefined) rmSync(sharedDisks, { recursive: true, force: true });
  }
}
