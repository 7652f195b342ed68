/**
 * The VM's address as a macvlan: its own MAC and IP on a link stacked on the host's interface,
 * so the VM looks like one more machine on the host's LAN and can move between hosts on that
 * LAN without any client noticing — the MAC and the IP go with it.
 *
 *   prepare()  namespace sysctls (below); `ip link add link <parent> name <link> address <mac>
 *              type macvlan mode bridge`, `addrgenmode none` (no IPv6 link-local, so the link
 *              sends no IPv6 frames of its own), the IP as /32. The link stays DOWN: a down
 *              macvlan does not claim its MAC on the parent, so frames for the VM are not
 *              accepted here. The destination does this during setup, while the VM still runs
 *              on the source, so a host that cannot take the address fails the migration early.
 *   take()     `ip link set <link> up`. With arp_notify the kernel sends a gratuitous ARP at
 *              once; re-announcements follow in the background on the announce.ts schedule
 *              (iputils `arping -U`), so a bridge that missed the first learns the MAC's new
 *              port. The MAC does not change, so clients' ARP caches stay right throughout:
 *              what moves is the bridges' idea of which port the MAC is behind.
 *   give()     stop announcing; `ip link set <link> down`.
 *   dispose()  stop announcing; `ip link del <link>`.
 *
 * Every command runs in the current network namespace: the agent runs inside its host's
 * namespace (or container), and so does everything it starts. No shell is involved.
 *
 * Sysctls (per namespace, set once in prepare and left set: they are right for every VM):
 *   net.ipv4.conf.all.arp_ignore=1    Linux is a weak host: any interface answers ARP for any
 *                                     local IP, so without this the parent (eth0) answers for the
 *                                     VM's IP with its own MAC — and first, since a macvlan
 *                                     handles broadcasts on a deferred queue; a Linux client
 *                                     keeps the first answer (neigh locktime) and sends the VM's
 *                                     traffic to this host even after the VM has left.
 *   net.ipv4.conf.all.arp_announce=2  ARP requests this host sends from eth0 (e.g. to resolve a
 *                                     client the VM replies to) carry eth0's own IP as sender,
 *                                     never the VM's — otherwise the client the VM first replies
 *                                     to re-points the VM's IP at eth0's MAC (seen in the lab:
 *                                     right after the handoff, until a re-announcement fixed it).
 *   net.ipv4.conf.all.arp_notify=1    bringing the link up sends a gratuitous ARP at once.
 *   rp_filter on the link not strict  with a /32 on the link, replies to clients route out of
 *                                     eth0, so strict reverse-path filtering (1) would drop every
 *                                     datagram and every ARP request that arrives on the link (the
 *                                     VM would not even answer ARP); the link's own value is
 *                                     set to loose (2) when the effective one (the max of `all`
 *                                     and the link's) is strict.
 * Where /proc/sys is read-only (a container), a value that is already right is fine; any other
 * is an ERR_ADDRESS that names the sysctl to set (compose: `sysctls:`).
 *
 * Two things the kernel does that this relies on or works around:
 *   - An address on a DOWN link is still a local address of the namespace (the local route
 *     stays), so after give() this host still delivers packets for the VM's IP that reach it
 *     addressed to its own MACs, and its own processes reach "the VM" locally. arp_ignore and
 *     arp_announce above make sure no neighbour learns such a MAC for the VM's IP.
 *   - With the default /32, replies leave through the parent (the subnet's route), with the
 *     parent's MAC as source; only ARP and the announcements carry the VM's MAC. Clients do not
 *     mind (their ARP entry for the VM's IP is the VM's MAC), and bridges learn the VM's port
 *     from the announcements and from the VM's ARP replies.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { ipv4ToU32 } from '../../vm/nic/ipv4.ts';
import { MigrationError } from '../../errors.ts';
import type { AddressMover, VmAddress } from './address-mover.ts';
import { announceDelays, type AnnounceSchedule } from './announce.ts';

const execFileAsync = promisify(execFile);

/** Linux's limit on interface names (IFNAMSIZ − 1). */
const MAX_LINK_NAME = 15;
const LINK_NAME = /^[A-Za-z0-9_.-]+$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

interface Sysctl {
  key: string;
  want: number;
  why: string;
}

/** Set once per namespace in prepare(), and left set: see the header for why each is needed. */
const NAMESPACE_SYSCTLS: readonly Sysctl[] = [
  { key: 'net.ipv4.conf.all.arp_ignore', want: 1, why: "(so the host's own interfaces never answer ARP for the VM)" },
  { key: 'net.ipv4.conf.all.arp_announce', want: 2, why: "(so the host's ARP requests never carry the VM's IP)" },
  { key: 'net.ipv4.conf.all.arp_notify', want: 1, why: '(so taking the address sends a gratuitous ARP at once)' },
];

/** What `ip` says about a link that is not there (`ip link show|del|set`). */
const NO_SUCH_LINK = /does not exist|Cannot find device/;

export interface MacvlanAddressOptions {
  /** The VM's IP, port and MAC (the MAC goes on the link). */
  address: VmAddress;
  /** The host's interface on the LAN the VM moves on, e.g. "eth0". */
  parent: string;
  /** Prefix length of the IP on the link. @default 32 (no subnet route through the link) */
  prefixLength?: number;
  /** Name of the macvlan link (≤ 15 characters). @default defaultLinkName(address.ip), e.g. "lmv0ac80532" */
  linkName?: string;
  /** Logs commands at debug, announcements and a missing arping at info/warn. @default no logging */
  logger?: Logger;
  /** The re-announce back-off after take(). @default DEFAULT_ANNOUNCE (50 ms + 100 ms steps, 5 rounds) */
  announce?: Partial<AnnounceSchedule>;
}

/** The link name for a VM's IP: "lmv" and the four octets in hex ("10.200.5.50" → "lmv0ac80532"). */
export function defaultLinkName(ip: string): string {
  return 'lmv' + ipv4ToU32(ip).toString(16).padStart(8, '0');
}

export class MacvlanAddress implements AddressMover {
  readonly bindBeforeTake = true;
  readonly mode = 'macvlan' as const;
  readonly address: Readonly<VmAddress>;
  readonly parent: string;
  readonly linkName: string;
  readonly prefixLength: number;
  readonly #logger: Logger | undefined;
  readonly #delays: readonly number[];
  /** Operations run one at a time, in call order (a give() during a take() waits for it). */
  #queue: Promise<unknown> = Promise.resolve();
  #prepared = false;
  #taken = false;
  /** The process that will bring the link up at take(), started at prepare (see #armLinkUp). */
  #armed: { child: ChildProcess; exited: Promise<{ code: number | null; stderr: string }> } | undefined;
  /** Bumped to cancel the announce rounds in flight. */
  #announceGeneration = 0;
  #announceTimer: NodeJS.Timeout | undefined;
  readonly #arpings = new Set<ChildProcess>();
  #arpingMissing = false;

  constructor(options: MacvlanAddressOptions) {
    const { address, parent } = options;
    ipv4ToU32(address.ip); // throws ERR_INVALID_ARGUMENT for anything but a dotted quad
    if (!MAC.test(address.mac) || (parseInt(address.mac.slice(0, 2), 16) & 1) !== 0) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `"${address.mac}" is not a unicast MAC (xx:xx:xx:xx:xx:xx)`);
    }
    const prefixLength = options.prefixLength ?? 32;
    if (!Number.isInteger(prefixLength) || prefixLength < 1 || prefixLength > 32) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `prefixLength must be an integer from 1 to 32, got ${prefixLength}`,
      );
    }
    const linkName = options.linkName ?? defaultLinkName(address.ip);
    checkLinkName(linkName, 'linkName');
    checkLinkName(parent, 'parent');
    if (linkName === parent) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `linkName and parent are both "${parent}"`);
    }
    this.address = Object.freeze({ ...address, mac: address.mac.toLowerCase() });
    this.parent = parent;
    this.linkName = linkName;
    this.prefixLength = prefixLength;
    this.#logger = options.logger?.child({ link: linkName, ip: address.ip });
    this.#delays = announceDelays(options.announce);
  }

  /** True between a take() and the next give() or dispose(). */
  get taken(): boolean {
    return this.#taken;
  }

  prepare(): Promise<void> {
    return this.#serial(() => this.#prepare());
  }

  take(): Promise<{ ms: number }> {
    return this.#serial(async () => {
      const start = performance.now();
      if (!this.#prepared) await this.#prepare();
      this.#stopAnnouncing();
      await this.#linkUp();
      this.#taken = true;
      const ms = performance.now() - start;
      this.#logger?.info({ event: 'address.taken', mode: this.mode, ms }, `took ${this.address.ip}`);
      this.#startAnnouncing();
      return { ms };
    });
  }

  give(): Promise<void> {
    return this.#serial(async () => {
      this.#stopAnnouncing();
      this.#taken = false;
      try {
        await this.#ip('link', 'set', 'dev', this.linkName, 'down');
      } catch (error) {
        // Nothing to give: never prepared here, or already disposed.
        if (!isNoSuchLink(error)) throw error;
      }
      this.#logger?.info({ event: 'address.given', mode: this.mode }, `gave ${this.address.ip} up`);
    });
  }

  dispose(): Promise<void> {
    return this.#serial(async () => {
      this.#stopAnnouncing();
      this.#disarmLinkUp();
      this.#taken = false;
      this.#prepared = false;
      try {
        await this.#ip('link', 'del', 'dev', this.linkName);
      } catch (error) {
        if (!isNoSuchLink(error)) throw error;
      }
    });
  }

  #serial<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(operation);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #prepare(): Promise<void> {
    await ensureSysctls(NAMESPACE_SYSCTLS);
    await this.#ensureLink();
    await this.#ensureLooseRpFilter();
    // Idempotent: `add` would fail on a second prepare with "File exists".
    await this.#ip('addr', 'replace', `${this.address.ip}/${this.prefixLength}`, 'dev', this.linkName);
    // A link left up by an earlier process must not answer for a VM that is not (yet) here.
    if (!this.#taken) await this.#ip('link', 'set', 'dev', this.linkName, 'down');
    this.#prepared = true;
    this.#armLinkUp();
  }

  /**
   * Start, now, the process that will bring the link up at take(), waiting on its stdin: at
   * handoff only an exec remains. Forking the agent costs milliseconds per process on a loaded
   * machine (tens with a large VM in memory), and take() is inside what clients see as downtime.
   */
  #armLinkUp(): void {
    this.#disarmLinkUp();
    const child = spawn('sh', ['-c', 'read -r go && exec ip link set dev "$0" up', this.linkName], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => {
      child.once('error', () => resolve({ code: -1, stderr: 'could not start sh' }));
      child.once('exit', (code) => resolve({ code, stderr }));
    });
    // Never keep the agent alive for it.
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    this.#armed = { child, exited };
  }

  #disarmLinkUp(): void {
    this.#armed?.child.kill('SIGKILL');
    this.#armed = undefined;
  }

  /** Bring the link up: through the armed process when there is one, else `ip` now. */
  async #linkUp(): Promise<void> {
    const armed = this.#armed;
    this.#armed = undefined;
    if (armed && armed.child.exitCode === null && armed.child.stdin?.writable) {
      armed.child.stdin.end('go\n');
      const { code, stderr } = await armed.exited;
      if (code === 0) return;
      this.#logger?.warn({ event: 'address.armed-failed', code, stderr }, 'armed link-up failed; running ip again');
    }
    await this.#ip('link', 'set', 'dev', this.linkName, 'up');
  }

  /** Create the link, or keep one already there if it is the right macvlan on the right parent. */
  async #ensureLink(): Promise<void> {
    const existing = await this.#linkInfo();
    if (existing) {
      const right = existing.kind === 'macvlan' && existing.parent === this.parent && existing.mac === this.address.mac;
      if (right) return;
      if (existing.kind !== 'macvlan') {
        throw new MigrationError(
          'ERR_ADDRESS',
          `a ${existing.kind ?? 'non-macvlan'} link named "${this.linkName}" already exists: choose another linkName`,
        );
      }
      // A stale macvlan of ours with another MAC or parent (an earlier run with other options).
      this.#logger?.warn({ event: 'address.link-replaced', existing }, 'replacing a stale macvlan');
      await this.#ip('link', 'del', 'dev', this.linkName);
    }
    await this.#ip(
      ...['link', 'add', 'link', this.parent, 'name', this.linkName, 'address', this.address.mac],
      ...['type', 'macvlan', 'mode', 'bridge'],
    );
    await this.#ip('link', 'set', 'dev', this.linkName, 'addrgenmode', 'none');
  }

  async #linkInfo(): Promise<{ kind: string | undefined; parent: string | undefined; mac: string } | undefined> {
    let stdout: string;
    try {
      stdout = await this.#ip('-j', '-d', 'link', 'show', 'dev', this.linkName);
    } catch (error) {
      if (isNoSuchLink(error)) return undefined;
      throw error;
    }
    const [link] = JSON.parse(stdout) as { link?: string; address?: string; linkinfo?: { info_kind?: string } }[];
    return { kind: link?.linkinfo?.info_kind, parent: link?.link, mac: (link?.address ?? '').toLowerCase() };
  }

  async #ensureLooseRpFilter(): Promise<void> {
    const all = await readSysctl('net/ipv4/conf/all/rp_filter');
    const own = await readSysctl(`net/ipv4/conf/${this.linkName}/rp_filter`);
    if (Math.max(all, own) !== 1) return;
    try {
      await writeFile(`/proc/sys/net/ipv4/conf/${this.linkName}/rp_filter`, '2');
    } catch (error) {
      throw new MigrationError(
        'ERR_ADDRESS',
        `strict reverse-path filtering would drop the VM's traffic (replies leave through ${this.parent}) and ` +
          `net.ipv4.conf.${this.linkName}.rp_filter cannot be set here (${errorMessage(error)}): ` +
          'set net.ipv4.conf.all.rp_filter=2 (or 0) in this namespace (compose: `sysctls:`)',
        { cause: error },
      );
    }
  }

  #startAnnouncing(): void {
    const generation = ++this.#announceGeneration;
    const schedule = (round: number): void => {
      const delay = this.#delays[round];
      if (delay === undefined) return;
      // unref: a pending announcement never keeps the process alive.
      this.#announceTimer = setTimeout(() => {
        if (generation !== this.#announceGeneration) return;
        this.#arping(round + 1);
        schedule(round + 1);
      }, delay).unref();
    };
    schedule(0);
  }

  #stopAnnouncing(): void {
    this.#announceGeneration++;
    clearTimeout(this.#announceTimer);
    this.#announceTimer = undefined;
    for (const child of this.#arpings) child.kill('SIGKILL');
    this.#arpings.clear();
  }

  /**
   * One gratuitous ARP request (sender IP = target IP = the VM's, from the VM's MAC). Each round
   * is its own process and is not awaited: `arping -c 1` lingers for a second after sending,
   * longer than the first gaps of the schedule.
   */
  #arping(round: number): void {
    if (this.#arpingMissing) return;
    const args = ['-q', '-U', '-c', '1', '-I', this.linkName, this.address.ip];
    const child = spawn('arping', args, { stdio: 'ignore' });
    child.unref();
    this.#arpings.add(child);
    child.once('error', (error: NodeJS.ErrnoException) => {
      this.#arpings.delete(child);
      if (error.code === 'ENOENT') {
        this.#arpingMissing = true;
        this.#logger?.warn(
          { event: 'address.arping-missing' },
          "arping (iputils) is not installed: relying on the kernel's gratuitous ARP at link up (arp_notify)",
        );
      } else {
        this.#logger?.warn({ event: 'address.announce-failed', round, err: error }, 'arping failed to start');
      }
    });
    child.once('exit', (code, signal) => {
      this.#arpings.delete(child);
      if (code === 0 || signal !== null) {
        this.#logger?.debug({ event: 'address.announce', round }, 'gratuitous ARP sent');
      } else {
        this.#logger?.warn({ event: 'address.announce-failed', round, code }, `arping ${args.join(' ')} failed`);
      }
    });
  }

  /** Run `ip …`; a failure is ERR_ADDRESS naming the command and what it said. */
  async #ip(...args: string[]): Promise<string> {
    this.#logger?.debug({ event: 'address.command', command: ['ip', ...args].join(' ') });
    try {
      const { stdout } = await execFileAsync('ip', args, { encoding: 'utf8' });
      return stdout;
    } catch (error) {
      const { code, stderr } = error as { code?: unknown; stderr?: string };
      const said = code === 'ENOENT' ? 'ip (iproute2) is not installed' : stderr?.trim() || errorMessage(error);
      throw new MigrationError('ERR_ADDRESS', `\`ip ${args.join(' ')}\` failed: ${said}`, { cause: error });
    }
  }
}

function checkLinkName(name: string, what: string): void {
  if (name.length > MAX_LINK_NAME || !LINK_NAME.test(name) || name === '.' || name === '..') {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `${what} "${name}" is not an interface name (1–${MAX_LINK_NAME} of A–Z a–z 0–9 _ . -)`,
    );
  }
}

function isNoSuchLink(error: unknown): boolean {
  return error instanceof MigrationError && NO_SUCH_LINK.test(error.message);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function readSysctl(path: string): Promise<number> {
  try {
    return Number((await readFile(`/proc/sys/${path}`, 'utf8')).trim());
  } catch (error) {
    throw new MigrationError('ERR_ADDRESS', `cannot read /proc/sys/${path}: ${errorMessage(error)}`, { cause: error });
  }
}

/**
 * Make each namespace sysctl its value. Read first and write only what differs, so a read-only
 * /proc/sys (a container) is fine as long as the values were set when the namespace was made;
 * the ones that are wrong and cannot be written are named together in one error.
 */
async function ensureSysctls(sysctls: readonly Sysctl[]): Promise<void> {
  const failed: { sysctl: Sysctl; current: number; error: unknown }[] = [];
  for (const sysctl of sysctls) {
    const path = sysctl.key.replaceAll('.', '/');
    const current = await readSysctl(path);
    if (current === sysctl.want) continue;
    try {
      await writeFile(`/proc/sys/${path}`, String(sysctl.want));
    } catch (error) {
      failed.push({ sysctl, current, error });
    }
  }
  if (failed.length === 0) return;
  const settings = failed.map(({ sysctl }) => `${sysctl.key}=${sysctl.want}`);
  const reasons = failed.map(
    ({ sysctl, current }) => `${sysctl.key} is ${current}, needs ${sysctl.want} ${sysctl.why}`,
  );
  throw new MigrationError(
    'ERR_ADDRESS',
    `cannot set sysctls here (${errorMessage(failed[0]!.error)}): set them for this network namespace ` +
      `(compose: \`sysctls: [${settings.join(', ')}]\`; or sysctl -w): ${reasons.join('; ')}`,
    { cause: failed[0]!.error },
  );
}
