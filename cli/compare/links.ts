/**
 * Where `livemig compare` migrates: two secure agents (a throwaway PKI, mutual TLS, a ticket per
 * migration) on loopback, or in a lab shaped to a profile (root; cli/lab/lab-agents.ts) — kept
 * for every cell of that link, so the agents' start is paid once per link, not per cell. Each
 * environment says what it measured of its link (a lab's link is measured before the agents
 * start; loopback's is not a link to measure) and how to reach a VM's service.
 */
import type { ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import type { ControlClient } from '@livemig/shared/control';
import { withAgentPair } from '../agent-process.ts';
import { withLabAgents } from '../lab/lab-agents.ts';
import { labUnavailable } from '../lab/host-probe.ts';
import { PROFILES } from '../lab/profiles.ts';
import { prepareIncoming, secureAgentArgs, SECURE_NAMES, securePki } from '../lab/secure.ts';
import type { LinkCase } from './results.ts';

/** A VM service's UDP port in the lab (its address is the lab's VM address). */
const LAB_SERVICE_PORT = 7000;

export interface LinkEnv {
  link: LinkCase;
  /** The destination's data address as the source reaches it. */
  to: string;
  /** The lab link as measured before the agents started (rate, RTT), or null on loopback. */
  measured: { rateBps: number; rttMs: number } | null;
  /** Admin control connections to each agent, open for the environment's life. */
  source: ControlClient;
  dest: ControlClient;
  /** What `migrate` needs besides vm and to (the ticket and the destination's name). */
  prepare(vm: string): Promise<{ ticket?: string; destName?: string }>;
  /** The address a kv VM's NIC gets here (and its probe's target). */
  serviceAddress(): Promise<string>;
}

/**
 * Every agent process this run started and has not stopped. They run in process groups of
 * their own (a terminal's Ctrl-C must not stop them mid-cell: compare finishes the cell), so an
 * early exit — a second Ctrl-C — must kill them itself (killAgents).
 */
const running = new Set<ChildProcess>();

const track = (child: ChildProcess): void => {
  running.add(child);
  child.once('exit', () => running.delete(child));
};

/** Kill every agent still running (a lab agent through its `ip netns exec` wrapper's group). */
export function killAgents(): void {
  for (const child of running) {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

/** Why a link cannot run on this host, or undefined when it can. */
export function linkUnavailable(link: LinkCase): string | undefined {
  if (link.kind === 'loopback') return undefined;
  if (process.getuid?.() !== 0) return 'lab links need root (network namespaces, tc, nftables)';
  return labUnavailable({ vmAddress: true });
}

/** Run `use` with agents on `link`, stopped (and the lab removed) afterwards whatever happens. */
export async function withLink<T>(link: LinkCase, use: (env: LinkEnv) => Promise<T>): Promise<T> {
  if (link.kind === 'loopback') {
    const pki = await securePki();
    try {
      return await withAgentPair(
        {
          sourceArgs: secureAgentArgs(pki, 'source'),
          destArgs: secureAgentArgs(pki, 'dest'),
          ownProcessGroup: true,
          onSpawn: track,
        },
        async ({ source, dest }) => {
          const clients = await Promise.all([
            pki.connect(source.control, SECURE_NAMES.admin, SECURE_NAMES.source),
            pki.connect(dest.control, SECURE_NAMES.admin, SECURE_NAMES.dest),
          ]);
          try {
            return await use({
              link,
              to: dest.listen,
              measured: null,
              source: clients[0],
              dest: clients[1],
              prepare: (vm) => prepareIncoming(pki, dest.control, vm),
              serviceAddress: freeLoopbackAddress,
            });
          } finally {
            for (const client of clients) client.close();
          }
        },
      );
    } finally {
      await pki.remove();
    }
  }
  const profile = PROFILES[link.profile!]!;
  return await withLabAgents(
    { profile, vmLink: true, secure: true, ownProcessGroup: true, onSpawn: track },
    async (lab) => {
      const clients = await Promise.all([lab.control('source', 'admin'), lab.control('dest', 'admin')]);
      try {
        return await use({
          link,
          to: lab.to,
          measured: lab.measured,
          source: clients[0],
          dest: clients[1],
          prepare: (vm) => lab.prepare(vm),
          serviceAddress: async () => `${lab.lab.vmAddress()}:${LAB_SERVICE_PORT}`,
        });
      } finally {
        for (const client of clients) client.close();
      }
    },
  );
}

async function freeLoopbackAddress(): Promise<string> {
  const socket = dgram.createSocket('udp4');
  const port = await new Promise<number>((resolve) =>
    socket.bind(0, '127.0.0.1', () => resolve(socket.address().port)),
  );
  socket.close();
  return `127.0.0.1:${port}`;
}
