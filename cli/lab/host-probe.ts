/**
 * Probing the host for the lab's prerequisites (the pure check is prerequisites.ts): the
 * effective capabilities from /proc/self/status, which tools run, and — with `ip` and
 * CAP_NET_ADMIN — what the kernel supports, tried on a throwaway veth pair and bridge in this
 * namespace (`lmq<pid>…`, deleted at once; no existing device is touched): veth, bridge,
 * macvlan, the tbf and netem qdiscs, and nf_tables (`nft list tables`, read-only).
 */
import { readFileSync } from 'node:fs';
import { sh, succeeds } from './sh.ts';
import {
  capabilitiesFromStatus,
  labNeeds,
  prerequisiteMessage,
  requirePrerequisites,
  type HostFacts,
  type LabNeeds,
} from './prerequisites.ts';
import { PROFILES } from './profiles.ts';

/** What this host has for the lab. */
export function probeHost(): HostFacts {
  const capabilities = probeCapabilities();
  const commands = {
    ip: succeeds('ip', '-V'),
    tc: succeeds('tc', '-V'),
    nft: succeeds('nft', '--version'),
    arping: succeeds('arping', '-V'),
  };
  const kernel: HostFacts['kernel'] = {};
  if (commands.ip && capabilities.netAdmin) Object.assign(kernel, probeLinks(commands.tc));
  if (commands.nft && capabilities.netAdmin) kernel.nftables = succeeds('nft', 'list', 'tables');
  return { capabilities, commands, kernel };
}

function probeCapabilities(): HostFacts['capabilities'] {
  try {
    const fromStatus = capabilitiesFromStatus(readFileSync('/proc/self/status', 'utf8'));
    if (fromStatus) return fromStatus;
  } catch {
    // No procfs: judge by the uid below.
  }
  const root = process.getuid?.() === 0;
  return { netAdmin: root, sysAdmin: root };
}

/** Try veth, macvlan, bridge, tbf and netem on throwaway links of this namespace. */
function probeLinks(tc: boolean): HostFacts['kernel'] {
  const base = `lmq${process.pid.toString(36)}${Math.floor(Math.random() * 36).toString(36)}`;
  const [a, b, mac, br] = [`${base}a`, `${base}b`, `${base}m`, `${base}r`];
  const kernel: HostFacts['kernel'] = {};
  try {
    kernel.veth = succeeds('ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    kernel.bridge = succeeds('ip', 'link', 'add', br, 'type', 'bridge');
    if (kernel.veth) {
      kernel.macvlan = succeeds('ip', 'link', 'add', mac, 'link', a, 'type', 'macvlan', 'mode', 'bridge');
      if (tc) {
        kernel.tbf = succeeds(
          'tc',
          'qdisc',
          'add',
          'dev',
          a,
          'root',
          'tbf',
          'rate',
          '1mbit',
          'burst',
          '32kb',
          'latency',
          '100ms',
        );
        kernel.netem = succeeds('tc', 'qdisc', 'add', 'dev', b, 'root', 'netem', 'delay', '1ms');
      }
    }
  } finally {
    // The macvlan and the veth's peer go with the veth.
    if (kernel.veth) succeeds('ip', 'link', 'del', a);
    if (kernel.bridge) succeeds('ip', 'link', 'del', br);
  }
  return kernel;
}

/** Throw one coded error naming everything this host lacks for `doing` (see prerequisites.ts). */
export function checkHost(doing: string, needs: LabNeeds, host: HostFacts = probeHost()): void {
  requirePrerequisites(doing, needs, host);
}

/** Every profile's needs: build, shape (with loss) and remove a lab. */
const ANY_PROFILE: LabNeeds = {
  ...labNeeds('run', Object.values(PROFILES)),
  remove: true,
};

/**
 * Why a lab cannot run here — everything missing, in one sentence — or undefined when it can
 * (test suites and benchmarks skip with it). By default: what every profile needs;
 * `vmAddress` adds a VM with its own address on the lab link (macvlan, arping).
 */
export function labUnavailable(options: { vmAddress?: boolean } = {}): string | undefined {
  const needs = { ...ANY_PROFILE, vmAddress: options.vmAddress === true };
  return prerequisiteMessage('run the lab', needs, probeHost());
}

/** Whether `dev` is a device of this network namespace (tc is there: the shape check comes first). */
export function deviceExists(dev: string): boolean {
  return succeeds('tc', 'qdisc', 'show', 'dev', dev);
}

/** The devices of this network namespace, for an error message ([] when `ip` cannot say). */
export function listDevices(): string[] {
  try {
    return sh('ip', '-o', 'link', 'show')
      .split('\n')
      .map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1])
      .filter((name): name is string => name !== undefined);
  } catch {
    return [];
  }
}
