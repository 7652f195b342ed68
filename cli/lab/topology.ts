/**
 * The lab's topology: named hosts, each a network namespace with an `eth0` veth into a bridge
 * that lives in a namespace of its own, plus one controller link from the namespace the lab was
 * built in (so a test or `livemig lab` can reach every host's agents). Addresses come from a
 * private test range that exists only on these links; names resolve through
 * /etc/netns/<ns>/hosts. Links are shaped per host (shape.ts); the controller link never is.
 *
 *            controller (.254) ── br0 (namespace <prefix>br) ──┬── source (.1) eth0
 *                                                              └── dest   (.2) eth0
 *
 * Every namespace carries the lab's per-run prefix; `destroy()` removes them (and their veths,
 * which die with them), as does process exit, and stale ones from a crashed run are removed when
 * the next lab is created.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { sh, succeeds } from './sh.ts';

/** Namespace prefixes: labs of a running process, and labs left up on purpose (`livemig lab up`). */
const FAMILY = 'lml';
const PERSISTENT_FAMILY = 'lmp';
const live = new Set<Lab>();
process.once('exit', () => {
  for (const lab of live) lab.destroy();
});

/** Why the lab cannot run here (not root, no iproute2), or undefined when it can. */
export function labUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the lab needs root (network namespaces, veth, tc)';
  if (!succeeds('ip', 'netns', 'list')) return 'iproute2 (`ip`) is not installed';
  if (!succeeds('tc', '-V')) return 'tc (iproute2) is not installed';
  // Loss needs netem or nftables; this check keeps a missing nft from failing tests midway.
  if (!succeeds('nft', '--version')) return 'nftables (`nft`) is not installed (apt-get install nftables)';
  return undefined;
}

export interface LabHost {
  name: string;
  ns: string;
  address: string;
  /** The host's link to the bridge, inside its namespace. */
  dev: 'eth0';
}

export class Lab {
  readonly prefix: string;
  readonly bridgeNs: string;
  readonly controllerAddress: string;
  /** The lab's /24, "a.b.c" (hosts are .1, .2, …; the controller is .254). */
  readonly subnet: string;
  readonly hosts: ReadonlyMap<string, LabHost>;
  readonly #controllerDev: string;
  #destroyed = false;

  private constructor(prefix: string, subnet: string, names: readonly string[]) {
    this.prefix = prefix;
    this.bridgeNs = `${prefix}br`;
    this.controllerAddress = `${subnet}.254`;
    this.subnet = subnet;
    this.#controllerDev = `${prefix}c`;
    this.hosts = new Map(
      names.map((name, i) => [name, { name, ns: `${prefix}-${name}`, address: `${subnet}.${i + 1}`, dev: 'eth0' }]),
    );
  }

  /**
   * Build the bridge, the hosts and the controller link. A persistent lab outlives this process
   * (`livemig lab up`) until `removeAllLabs()` (`livemig lab down`).
   */
  static create(names: readonly string[], options: { persistent?: boolean } = {}): Lab {
    removeStaleLabs();
    // <family><pid in base 36>x<random>: the pid lets a later run tell a crashed lab from a live one.
    const family = options.persistent ? PERSISTENT_FAMILY : FAMILY;
    const prefix = `${family}${process.pid.toString(36)}x${Math.floor(Math.random() * 1296).toString(36)}`;
    const subnet = `10.${200 + (process.pid % 50)}.${(process.pid >> 6) % 250}`;
    const lab = new Lab(prefix, subnet, names);
    if (!options.persistent) live.add(lab);
    try {
      lab.#build();
    } catch (error) {
      lab.destroy();
      throw error;
    }
    return lab;
  }

  #build(): void {
    const br = this.bridgeNs;
    sh('ip', 'netns', 'add', br);
    sh('ip', '-n', br, 'link', 'add', 'br0', 'type', 'bridge');
    sh('ip', '-n', br, 'link', 'set', 'br0', 'up');
    // The controller: a veth from here into the bridge.
    const ctl = this.#controllerDev;
    sh('ip', 'link', 'add', ctl, 'type', 'veth', 'peer', 'name', 'ctl0', 'netns', br);
    sh('ip', '-n', br, 'link', 'set', 'ctl0', 'master', 'br0', 'up');
    sh('ip', 'addr', 'add', `${this.controllerAddress}/24`, 'dev', ctl);
    sh('ip', 'link', 'set', ctl, 'up');
    let port = 0;
    for (const host of this.hosts.values()) {
      const side = `p${port++}`;
      sh('ip', 'netns', 'add', host.ns);
      sh('ip', '-n', host.ns, 'link', 'set', 'lo', 'up');
      sh('ip', '-n', host.ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', side, 'netns', br);
      sh('ip', '-n', br, 'link', 'set', side, 'master', 'br0', 'up');
      sh('ip', '-n', host.ns, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0');
      sh('ip', '-n', host.ns, 'link', 'set', 'eth0', 'up');
    }
    // Names resolve inside every host namespace (ip netns exec bind-mounts this file).
    const hostsFile = [
      '127.0.0.1 localhost',
      `${this.controllerAddress} controller`,
      ...[...this.hosts.values()].map((h) => `${h.address} ${h.name}`),
      '',
    ].join('\n');
    for (const host of this.hosts.values()) {
      mkdirSync(`/etc/netns/${host.ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${host.ns}/hosts`, hostsFile);
    }
  }

  /** An address on the lab's link for a VM (its own IP, moved with it): .50, .51, … */
  vmAddress(index = 0): string {
    return `${this.subnet}.${50 + index}`;
  }

  host(name: string): LabHost {
    const host = this.hosts.get(name);
    if (!host) throw new Error(`lab has no host "${name}"`);
    return host;
  }

  /** Prefix to run a command inside a host's namespace (e.g. startAgentProcess's `wrap`). */
  wrap(name: string): string[] {
    return ['ip', 'netns', 'exec', this.host(name).ns];
  }

  /** Remove every namespace of this lab (their veths go with them) and its hosts files. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    live.delete(this);
    for (const host of this.hosts.values()) deleteNamespace(host.ns);
    deleteNamespace(this.bridgeNs);
    succeeds('ip', 'link', 'del', this.#controllerDev);
  }
}

function deleteNamespace(ns: string): void {
  succeeds('ip', 'netns', 'del', ns);
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
}

/** Namespaces of labs whose process is gone (a crashed run) are removed. */
function removeStaleLabs(): void {
  const names = sh('ip', 'netns', 'list')
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(FAMILY));
  const ours = new Set([...live].flatMap((lab) => [lab.bridgeNs, ...[...lab.hosts.values()].map((h) => h.ns)]));
  for (const name of names) {
    const pid = parseInt(name.slice(FAMILY.length).split('x')[0] ?? '', 36);
    if (!ours.has(name) && !pidAlive(pid)) deleteNamespace(name);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Remove every lab namespace on this machine, persistent ones included (`livemig lab down`). */
export function removeAllLabs(): string[] {
  const names = sh('ip', 'netns', 'list')
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(FAMILY) || name.startsWith(PERSISTENT_FAMILY));
  for (const name of names) deleteNamespace(name);
  return names;
}
