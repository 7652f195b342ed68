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
 * Every namespace carries the lab's per-run prefix and, on its loopback device, a mark saying
 * whose lab it is (ownership.ts); `destroy()` removes them (and their veths, which die with
 * them), as does process exit. The caller's stale ones from a crashed run are removed when the
 * next lab is created; `removeLabs` (`livemig lab down`) removes the caller's labs, or with
 * `all` every marked one — never a namespace without a mark.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import {
  formatMark,
  labOwner,
  namespacesToRemove,
  parseMark,
  type LabMark,
  type MarkedNamespace,
} from './ownership.ts';
import { sh, succeeds } from './sh.ts';

export { labUnavailable } from './host-probe.ts';

/** Namespace prefixes: labs of a running process, and labs left up on purpose (`livemig lab up`). */
const FAMILY = 'lml';
const PERSISTENT_FAMILY = 'lmp';
const live = new Set<Lab>();
process.once('exit', () => {
  for (const lab of live) lab.destroy();
});

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
  /** The mark every namespace of the lab carries: whose it is, and whether it outlives its process. */
  readonly mark: LabMark;
  readonly #controllerDev: string;
  #destroyed = false;

  private constructor(prefix: string, subnet: string, names: readonly string[], mark: LabMark) {
    this.prefix = prefix;
    this.mark = mark;
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
   * (`livemig lab up`) until `removeLabs()` (`livemig lab down`). `owner`: whose lab it is
   * (default: the calling user, see ownership.ts).
   */
  static create(names: readonly string[], options: { persistent?: boolean; owner?: string } = {}): Lab {
    const owner = options.owner ?? currentOwner();
    removeLabs({ kind: 'stale', owner });
    // <family><pid in base 36>x<random>, for people (the mark is what counts).
    const family = options.persistent ? PERSISTENT_FAMILY : FAMILY;
    const prefix = `${family}${process.pid.toString(36)}x${Math.floor(Math.random() * 1296).toString(36)}`;
    const subnet = `10.${200 + (process.pid % 50)}.${(process.pid >> 6) % 250}`;
    const mark: LabMark = { lab: prefix, owner, pid: process.pid, persistent: options.persistent === true };
    const lab = new Lab(prefix, subnet, names, mark);
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
    this.#addNamespace(br);
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
      this.#addNamespace(host.ns);
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

  /** A namespace, marked as this lab's at once: a namespace without the mark is never removed. */
  #addNamespace(ns: string): void {
    sh('ip', 'netns', 'add', ns);
    sh('ip', '-n', ns, 'link', 'set', 'dev', 'lo', 'alias', formatMark(this.mark));
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

/** The user new labs belong to, and whose labs `lab down` removes: the sudo caller, else this uid. */
export function currentOwner(): string {
  return labOwner(process.env, process.getuid?.());
}

/** Every namespace on this machine that carries a lab mark, with its mark. */
export function markedNamespaces(): MarkedNamespace[] {
  const names = sh('ip', 'netns', 'list')
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(FAMILY) || name.startsWith(PERSISTENT_FAMILY));
  const found: MarkedNamespace[] = [];
  for (const ns of names) {
    const mark = parseMark(loopbackAlias(ns));
    // The mark must be of a lab this name belongs to: a copied alias does not make a namespace ours.
    if (mark && ns.startsWith(mark.lab)) found.push({ ns, mark });
  }
  return found;
}

function loopbackAlias(ns: string): string | undefined {
  try {
    const [lo] = JSON.parse(sh('ip', '-n', ns, '-j', 'link', 'show', 'dev', 'lo')) as { ifalias?: string }[];
    return lo?.ifalias;
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, but is not ours to signal.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What `removeLabs` removed, and the marked namespaces it left (other users' labs, running labs). */
export interface RemovedLabs {
  removed: MarkedNamespace[];
  kept: MarkedNamespace[];
}

/**
 * Remove lab namespaces by their marks (ownership.ts): `all` every marked one (`lab down
 * --all`); `mine` the owner's labs left up and crashed (`lab down`); `stale` the owner's
 * crashed ones. Namespaces without a mark are never touched, nor are this process's live labs
 * except with `all`.
 */
export function removeLabs(scope: { kind: 'all' } | { kind: 'mine' | 'stale'; owner: string }): RemovedLabs {
  const found = markedNamespaces();
  const ours = new Set([...live].flatMap((lab) => [lab.bridgeNs, ...[...lab.hosts.values()].map((h) => h.ns)]));
  const candidates = scope.kind === 'all' ? found : found.filter(({ ns }) => !ours.has(ns));
  const removed = namespacesToRemove(candidates, scope, pidAlive);
  for (const { ns } of removed) deleteNamespace(ns);
  return { removed, kept: found.filter((entry) => !removed.includes(entry)) };
}
