/**
 * A lab with its two agents running, for as many migrations as the caller makes: check the host
 * (prerequisites.ts), build hosts `source` and `dest`, shape the link to the profile, measure
 * what it really gives (more than 20% off the profile fails: shaping must be real), put the
 * delay relay on the path when the kernel has no netem, start an agent in each namespace, hand
 * the caller what it needs to migrate (the destination's address as the source sees it, control
 * connections, tickets), then stop everything and tear the lab down, whatever happened.
 * withLabMigration (one migration) and `livemig compare` (many) are built on it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '@livemig/shared/control';
import { startAgentProcess, type AgentProcess, type StartAgentOptions } from '../agent-process.ts';
import type { ThrowawayPki } from '../throwaway-pki.ts';
import { startDelayRelay, type DelayRelay } from './delay-relay.ts';
import { checkHost } from './host-probe.ts';
import { measureCheckedLink, type LinkMeasurement } from './measure.ts';
import { labNeeds } from './prerequisites.ts';
import type { LinkProfile } from './profiles.ts';
import { prepareIncoming, secureAgentArgs, SECURE_NAMES, securePki } from './secure.ts';
import { shapeLab, type ShapingMechanisms } from './shape.ts';
import { Lab } from './topology.ts';

export interface LabAgentsOptions {
  profile: LinkProfile;
  /** Called with every agent process as it starts (tests track them for cleanup). */
  onSpawn?: StartAgentOptions['onSpawn'];
  /** Each agent in a process group of its own (startAgentProcess). @default false */
  ownProcessGroup?: boolean;
  /** VMs get their own IP on the lab link (a macvlan, --vm-link eth0 on both agents). @default false */
  vmLink?: boolean;
  /** Both agents keep disk images in one (temporary) directory, as shared storage. @default false */
  sharedDisks?: boolean;
  /** Mutual TLS with a throwaway PKI; migrations take a ticket. @default false (plaintext, --insecure) */
  secure?: boolean;
  /** More flags for the source agent (e.g. a VM to boot), given the lab's VM address. */
  sourceArgs?: (vmAddress: string) => string[];
}

export interface LabAgents {
  lab: Lab;
  profile: LinkProfile;
  mechanisms: ShapingMechanisms;
  /** What the link measured before the agents started. */
  measured: LinkMeasurement;
  source: AgentProcess;
  dest: AgentProcess;
  /** The destination's data address as the source reaches it (through the delay relay if any). */
  to: string;
  /** A control connection to one agent, as the lab's operator or admin (wss when secure). */
  control(side: 'source' | 'dest', role: 'operator' | 'admin'): Promise<ControlClient>;
  /** What `migrate` needs besides vm and to: a ticket and the destination's name when secure; nothing otherwise. */
  prepare(vm: string): Promise<{ ticket?: string; destName?: string }>;
}

export async function withLabAgents<T>(options: LabAgentsOptions, use: (env: LabAgents) => Promise<T>): Promise<T> {
  const { profile } = options;
  checkHost(`run a lab migration over ${profile.name}`, labNeeds('run', [profile], { vmAddress: options.vmLink }));
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
    const measured = await measureCheckedLink(lab, 'source', 'dest', profile, async (port) => ({
      address: await pathTo(mechanisms, port),
      close: async () => {},
    }));
    const spawn = {
      ...(options.onSpawn ? { onSpawn: options.onSpawn } : {}),
      ...(options.ownProcessGroup ? { ownProcessGroup: true } : {}),
    };
    const destHost = lab.host('dest');
    const sourceHost = lab.host('source');
    const vmLink = options.vmLink ? ['--vm-link', 'eth0'] : [];
    if (options.sharedDisks) sharedDisks = mkdtempSync(join(tmpdir(), 'livemig-lab-disks-'));
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
          ...['--control', `${sourceHost.address}:0`, ...vmLink, ...diskDir],
          ...(options.sourceArgs?.(lab.vmAddress()) ?? []),
          ...securityArgs('source'),
        ],
        ...spawn,
      }).then((a) => (agents.push(a), a)),
    ]);
    const to = await pathTo(mechanisms, Number(dest.listen.split(':').pop()));
    return await use({
      lab,
      profile,
      mechanisms,
      measured,
      source,
      dest,
      to,
      control: (side, role) => {
        const control = (side === 'source' ? source : dest).control;
        return pki ? pki.connect(control, SECURE_NAMES[role], SECURE_NAMES[side]) : ControlClient.connect(control);
      },
      prepare: async (vm) => (pki ? prepareIncoming(pki, dest.control, vm) : {}),
    });
  } finally {
    await Promise.all(agents.map((agent) => agent.stop()));
    for (const relay of relays) await relay.close();
    lab.destroy();
    await pki?.remove();
    if (sharedDisks !== undefined) rmSync(sharedDisks, { recursive: true, force: true });
  }
}
