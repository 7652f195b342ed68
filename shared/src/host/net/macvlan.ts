/**
 * The VM's address as a macvlan: its own MAC and IP on a link stacked on the host's interface,
 * so the VM looks like one more machine on the host's LAN and can move between hosts on that
 * LAN without any client noticing — the MAC and the IP go with it. This module owns the mover
 * and the link; the pieces it drives are their own modules:
 *   ip-command.ts     running `ip` (no shell, in the current network namespace)
 *   sysctls.ts        the namespace and link sysctls, and why each is needed
 *   armed-command.ts  the processes, forked ahead, that bring the link up at take() and down
 *                     at give()
 *   announce.ts       the re-announcements after take()
 *
 *   prepare()  namespace sysctls; `ip link add link <parent> name <link> address <mac>
 *              type macvlan mode bridge`, `addrgenmode none` (no IPv6 link-local, so the link
 *              sends no IPv6 frames of its own), the IP as /32, rp_filter on the link not strict.
 *              The link stays DOWN: a down macvlan does not claim its MAC on the parent, so
 *              frames for the VM are not accepted here. The destination does this during setup,
 *              while the VM still runs on the source, so a host that cannot take the address
 *              fails the migration early. Then the link-up is armed.
 *   take()     `ip link set <link> up` (through the armed process). With arp_notify the kernel
 *              sends a gratuitous ARP at once; re-announcements follow in the background on the
 *              announce.ts schedule (iputils `arping -U`), so a bridge that missed the first
 *              learns the MAC's new port. The MAC does not change, so clients' ARP caches stay
 *              right throughout: what moves is the bridges' idea of which port the MAC is behind.
 *   prepareGive()  the source, as a migration starts: arm the link-down.
 *   give()     stop announcing; `ip link set <link> down` (through the armed process). The
 *              source does this at handoff, inside the downtime: forking an agent that holds a
 *              128 MiB VM blocked its main thread 16–37 ms there (lan, kv), and Resumed waited.
 *   dispose()  stop announcing; `ip link del <link>`.
 *
 * Two things the kernel does that this relies on or works around:
 *   - An address on a DOWN link is still a local address of the namespace (the local route
 *     stays), so after give() this host still delivers packets for the VM's IP that reach it
 *     addressed to its own MACs, and its own processes reach "the VM" locally. arp_ignore and
 *     arp_announce (sysctls.ts) make sure no neighbour learns such a MAC for the VM's IP.
 *   - With the default /32, replies leave through the parent (the subnet's route), with the
 *     parent's MAC as source; only ARP and the announcements carry the VM's MAC. Clients do not
 *     mind (their ARP entry for the VM's IP is the VM's MAC), and bridges learn the VM's port
 *     from the announcements and from the VM's ARP replies.
 */
import type { Logger } from 'pino';
import { ipv4ToU32 } from '../../vm/nic/ipv4.ts';
import { MigrationError } from '../../errors.ts';
import type { AddressMover, VmAddress } from './address-mover.ts';
import { ArpAnnouncer, type AnnounceSchedule } from './announce.ts';
import { ArmedCommand, type ArmedResult } from './armed-command.ts';
import { isNoSuchLink, runIp } from './ip-command.ts';
import { ensureLooseRpFilter, ensureSysctls, MACVLAN_SYSCTLS } from './sysctls.ts';

/** Linux's limit on interface names (IFNAMSIZ − 1). */
const MAX_LINK_NAME = 15;
const LINK_NAME = /^[A-Za-z0-9_.-]+$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

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
  readonly #announcer: ArpAnnouncer;
  /** Operations run one at a time, in call order (a give() during a take() waits for it). */
  #queue: Promise<unknown> = Promise.resolve();
  /** Operations queued or running. */
  #pending = 0;
  #prepared = false;
  #taken = false;
  /** The process that will bring the link up at take(), started at prepare (armed-command.ts). */
  #armedUp: ArmedCommand | undefined;
  /** The process that will take the link down at give(), started at prepareGive. */
  #armedDown: ArmedCommand | undefined;

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
    this.#announcer = new ArpAnnouncer({
      link: linkName,
      ip: address.ip,
      announce: options.announce,
      logger: this.#logger,
    });
  }

  /** True between a take() and the next give() or dispose(). */
  get taken(): boolean {
    return this.#taken;
  }

  prepare(): Promise<void> {
    return this.#serial(() => this.#prepare());
  }

  take(): Promise<{ ms: number }> {
    const start = performance.now();
    // take() runs inside the handoff, which clients see as downtime: with nothing else queued
    // and the link-up armed, fire it now, in the caller's tick, instead of a microtask later —
    // after the rest of the caller's Handoff handling (the vCPU's resume, Resumed, logging).
    const early = this.#pending === 0 && this.#prepared && !this.#taken ? this.#takeArmed('up')?.fire() : undefined;
    return this.#serial(async () => {
      if (!this.#prepared) await this.#prepare();
      this.#announcer.stop();
      await this.#armedOrIp(early ?? this.#takeArmed('up')?.fire(), 'up');
      this.#taken = true;
      const ms = performance.now() - start;
      this.#logger?.info({ event: 'address.taken', mode: this.mode, ms }, `took ${this.address.ip}`);
      this.#announcer.start();
      return { ms };
    });
  }

  prepareGive(): void {
    if (this.#armedDown?.waiting) return;
    this.#armedDown = ArmedCommand.arm(['ip', 'link', 'set', 'dev', this.linkName, 'down']);
  }

  give(): Promise<void> {
    // As take(): with nothing queued, the armed link-down goes now, in the caller's tick (the
    // handoff sends Handoff right after), and the announcements stop first.
    let early: Promise<ArmedResult> | undefined;
    if (this.#pending === 0 && this.#taken) {
      this.#announcer.stop();
      early = this.#takeArmed('down')?.fire();
    }
    return this.#serial(async () => {
      this.#announcer.stop();
      const taken = this.#taken;
      this.#taken = false;
      try {
        const fired = early ?? (taken ? this.#takeArmed('down')?.fire() : undefined);
        await this.#armedOrIp(fired, 'down');
      } catch (error) {
        // Nothing to give: never prepared here, or already disposed.
        if (!isNoSuchLink(error)) throw error;
      }
      this.#logger?.info({ event: 'address.given', mode: this.mode }, `gave ${this.address.ip} up`);
    });
  }

  dispose(): Promise<void> {
    return this.#serial(async () => {
      this.#announcer.stop();
      this.#takeArmed('up')?.disarm();
      this.#takeArmed('down')?.disarm();
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
    this.#pending += 1;
    const result = this.#queue.then(operation).finally(() => {
      this.#pending -= 1;
    });
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #prepare(): Promise<void> {
    await ensureSysctls(MACVLAN_SYSCTLS);
    await this.#ensureLink();
    await ensureLooseRpFilter(this.linkName, this.parent);
    // Idempotent: `add` would fail on a second prepare with "File exists".
    await this.#ip('addr', 'replace', `${this.address.ip}/${this.prefixLength}`, 'dev', this.linkName);
    // A link left up by an earlier process must not answer for a VM that is not (yet) here.
    if (!this.#taken) await this.#ip('link', 'set', 'dev', this.linkName, 'down');
    this.#prepared = true;
    // At handoff only an exec remains: take() is inside what clients see as downtime.
    this.#takeArmed('up')?.disarm();
    this.#armedUp = ArmedCommand.arm(['ip', 'link', 'set', 'dev', this.linkName, 'up']);
  }

  /** The armed link-up or link-down, handed over (this mover holds it no more). */
  #takeArmed(state: 'up' | 'down'): ArmedCommand | undefined {
    const armed = state === 'up' ? this.#armedUp : this.#armedDown;
    if (state === 'up') this.#armedUp = undefined;
    else this.#armedDown = undefined;
    return armed;
  }

  /** Set the link up or down: through the armed process's run when there is one, else `ip` now. */
  async #armedOrIp(fired: Promise<ArmedResult> | undefined, state: 'up' | 'down'): Promise<void> {
    if (fired) {
      const { code, stderr } = await fired;
      if (code === 0) return;
      this.#logger?.warn(
        { event: 'address.armed-failed', state, code, stderr },
        `armed link-${state} failed; running ip again`,
      );
    }
    await this.#ip('link', 'set', 'dev', this.linkName, state);
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

  #ip(...args: string[]): Promise<string> {
    return runIp(args, this.#logger);
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
