/**
 * What the lab needs from its host, checked all at once before anything is built (issue 14): a
 * pure function from what a command is about to do (`LabNeeds`) and what the host has
 * (`HostFacts`, probed apart in host-probe.ts) to the list of everything missing, and one coded
 * error naming them all, with the Debian packages that provide the missing tools.
 *
 *   prerequisite              needed for                                      package
 *   CAP_NET_ADMIN             links, addresses, qdiscs                        —
 *   CAP_SYS_ADMIN             creating and removing network namespaces        —
 *   ip, kernel veth + bridge  building a lab                                  iproute2
 *   tc, kernel tbf            shaping the rate (every profile)                iproute2
 *   nft, kernel nf_tables     a profile's loss where the kernel has no netem  nftables
 *   arping, kernel macvlan    a VM with its own address on the lab link       iputils-arping
 *
 * A kernel feature counts as missing only when the probe could try it and it failed: one that
 * could not be tried (no `ip`, no CAP_NET_ADMIN) is named as unchecked, never as missing.
 */
import { MigrationError } from '@livemig/shared';
import type { LinkProfile } from './profiles.ts';

/** What a lab command is about to do. */
export interface LabNeeds {
  /** Create namespaces, veths and a bridge (`lab run`, `lab up`). */
  build: boolean;
  /** Delete namespaces (`lab down`). */
  remove: boolean;
  /** Shape links with tc: the rate by tbf (every profile). */
  shape: boolean;
  /** Drop packets: netem, or nftables where the kernel has no netem (a profile with loss). */
  loss: boolean;
  /** A VM with its own address on the lab link: a macvlan, announced with arping. */
  vmAddress: boolean;
}

/** What the host has. */
export interface HostFacts {
  capabilities: { netAdmin: boolean; sysAdmin: boolean };
  commands: { ip: boolean; tc: boolean; nft: boolean; arping: boolean };
  /** Kernel support, tried on a throwaway link; undefined where it could not be tried. */
  kernel: {
    veth?: boolean;
    bridge?: boolean;
    macvlan?: boolean;
    tbf?: boolean;
    netem?: boolean;
    nftables?: boolean;
  };
}

/** The Debian packages that provide the lab's tools. */
export type DebianPackage = 'iproute2' | 'nftables' | 'iputils-arping';

const PREREQUISITES = {
  'cap-net-admin': { description: 'CAP_NET_ADMIN (links, addresses, qdiscs)' },
  'cap-sys-admin': { description: 'CAP_SYS_ADMIN (creating and removing network namespaces)' },
  ip: { description: '`ip` (namespaces, veths, the bridge)', package: 'iproute2' },
  tc: { description: '`tc` (shaping the rate)', package: 'iproute2' },
  nft: { description: "`nft` (the profile's packet loss, where the kernel has no netem)", package: 'nftables' },
  arping: {
    description: "`arping` of iputils (announcing the VM's address after it moves)",
    package: 'iputils-arping',
  },
  'kernel-veth': { description: 'kernel veth support (CONFIG_VETH)' },
  'kernel-bridge': { description: 'kernel bridge support (CONFIG_BRIDGE)' },
  'kernel-tbf': { description: 'the tbf qdisc (CONFIG_NET_SCH_TBF, shaping the rate)' },
  'kernel-nftables': { description: "nf_tables in the kernel (CONFIG_NF_TABLES, the profile's packet loss)" },
  'kernel-macvlan': { description: "kernel macvlan support (CONFIG_MACVLAN, the VM's own address)" },
} as const satisfies Record<string, { description: string; package?: DebianPackage }>;

export type PrerequisiteId = keyof typeof PREREQUISITES;

/** One missing prerequisite. */
export interface Prerequisite {
  id: PrerequisiteId;
  /** What it is and what needs it, for people. */
  description: string;
  /** The Debian package that provides it, for a missing tool. */
  package?: DebianPackage;
}

/** The code of the prerequisite error: the input is fine, this host cannot serve it (exit 1). */
export const PREREQUISITE_ERROR_CODE = 'ERR_PREREQUISITE';

/**
 * What a command needs, for the profiles it will apply (none for `lab down`, or `lab shape
 * --profile none`). `vmAddress`: a VM with its own address on the lab link.
 */
export function labNeeds(
  command: 'run' | 'up' | 'down' | 'shape',
  profiles: readonly LinkProfile[],
  options: { vmAddress?: boolean } = {},
): LabNeeds {
  const build = command === 'run' || command === 'up';
  return {
    build,
    remove: command === 'down',
    shape: command !== 'down' && profiles.length > 0,
    loss: command !== 'down' && profiles.some((p) => p.loss > 0),
    vmAddress: build && options.vmAddress === true,
  };
}

/** Everything `needs` asks of the host that `host` lacks, in a fixed order (privileges, tools, kernel). */
export function missingPrerequisites(needs: LabNeeds, host: HostFacts): Prerequisite[] {
  const { build, remove, shape, loss, vmAddress } = needs;
  const { capabilities: cap, commands: cmd, kernel } = host;
  const absent = (feature: boolean | undefined): boolean => feature === false;
  // Loss is dropped by netem where the kernel has it, else by an nftables rule.
  const nft = loss && kernel.netem !== true;
  const checks: [PrerequisiteId, boolean][] = [
    ['cap-net-admin', (build || shape) && !cap.netAdmin],
    ['cap-sys-admin', (build || remove) && !cap.sysAdmin],
    ['ip', (build || remove) && !cmd.ip],
    ['tc', shape && !cmd.tc],
    ['nft', nft && !cmd.nft],
    ['arping', vmAddress && !cmd.arping],
    ['kernel-veth', build && absent(kernel.veth)],
    ['kernel-bridge', build && absent(kernel.bridge)],
    ['kernel-tbf', shape && absent(kernel.tbf)],
    ['kernel-nftables', nft && cmd.nft && absent(kernel.nftables)],
    ['kernel-macvlan', vmAddress && absent(kernel.macvlan)],
  ];
  return checks.filter(([, missing]) => missing).map(([id]) => ({ id, ...PREREQUISITES[id] }));
}

/** The kernel features `needs` asks for that the probe could not try (their check waits for the rest). */
export function uncheckedKernelFeatures(needs: LabNeeds, host: HostFacts): string[] {
  const { kernel, commands } = host;
  const nft = needs.loss && kernel.netem !== true;
  const wanted: [string, boolean, boolean | undefined][] = [
    ['veth', needs.build, kernel.veth],
    ['bridge', needs.build, kernel.bridge],
    ['tbf', needs.shape, kernel.tbf],
    ['nf_tables', nft && commands.nft, kernel.nftables],
    ['macvlan', needs.vmAddress, kernel.macvlan],
  ];
  return wanted.filter(([, needed, known]) => needed && known === undefined).map(([name]) => name);
}

/** `apt-get install -y …` for the missing tools (each package once, in a fixed order), or undefined. */
export function installCommand(missing: readonly Prerequisite[]): string | undefined {
  const order: readonly DebianPackage[] = ['iproute2', 'nftables', 'iputils-arping'];
  const packages = order.filter((name) => missing.some((p) => p.package === name));
  return packages.length ? `apt-get install -y ${packages.join(' ')}` : undefined;
}

/**
 * The message naming everything missing for `doing` (e.g. "run profile wan"), how to get the
 * tools and privileges, and which kernel features are still to be checked; undefined when
 * nothing is missing.
 */
export function prerequisiteMessage(doing: string, needs: LabNeeds, host: HostFacts): string | undefined {
  const missing = missingPrerequisites(needs, host);
  if (missing.length === 0) return undefined;
  const install = installCommand(missing);
  const capabilities = missing.filter((p) => p.id.startsWith('cap-')).map((p) => p.description.split(' ')[0]);
  const unchecked = uncheckedKernelFeatures(needs, host);
  return (
    `cannot ${doing} here; missing: ${missing.map((p) => p.description).join(', ')}` +
    (install ? `. Install with: ${install}` : '') +
    (capabilities.length ? `. Run as root (or with ${capabilities.join(' and ')})` : '') +
    (unchecked.length ? `. Not checked until those are there: kernel ${unchecked.join(', ')}` : '')
  );
}

/** Throw one coded error naming everything missing for `doing`; return when nothing is. */
export function requirePrerequisites(doing: string, needs: LabNeeds, host: HostFacts): void {
  const message = prerequisiteMessage(doing, needs, host);
  if (message) throw new MigrationError(PREREQUISITE_ERROR_CODE, `livemig lab: ${message}`);
}

/**
 * CAP_NET_ADMIN (bit 12) and CAP_SYS_ADMIN (bit 21) of the effective set in /proc/self/status
 * text, or undefined when it has no CapEff line.
 */
export function capabilitiesFromStatus(status: string): HostFacts['capabilities'] | undefined {
  const hex = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status)?.[1];
  if (hex === undefined) return undefined;
  const effective = BigInt(`0x${hex}`);
  const has = (bit: bigint): boolean => (effective & (1n << bit)) !== 0n;
  return { netAdmin: has(12n), sysAdmin: has(21n) };
}
