/**
 * The kernel settings a macvlan address needs in its network namespace: this module owns
 * reading and setting them, and why each is needed.
 *
 * Per namespace, set once when a macvlan is prepared and left set (they are right for every VM):
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
 * Per link:
 *   rp_filter not strict              with a /32 on the link, replies to clients route out of
 *                                     eth0, so strict reverse-path filtering (1) would drop every
 *                                     datagram and every ARP request that arrives on the link (the
 *                                     VM would not even answer ARP); the link's own value is
 *                                     set to loose (2) when the effective one (the max of `all`
 *                                     and the link's) is strict.
 * Where /proc/sys is read-only (a container), a value that is already right is fine; any other
 * is an ERR_ADDRESS that names the sysctl to set (compose: `sysctls:`).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { MigrationError, toMigrationError } from '../../errors.ts';

/** A sysctl, the value it needs, and why (for the error when it cannot be set). */
export interface Sysctl {
  key: string;
  want: number;
  why: string;
}

/** The namespace sysctls a macvlan address needs: see the header for why each is needed. */
export const MACVLAN_SYSCTLS: readonly Sysctl[] = [
  { key: 'net.ipv4.conf.all.arp_ignore', want: 1, why: "(so the host's own interfaces never answer ARP for the VM)" },
  { key: 'net.ipv4.conf.all.arp_announce', want: 2, why: "(so the host's ARP requests never carry the VM's IP)" },
  { key: 'net.ipv4.conf.all.arp_notify', want: 1, why: '(so taking the address sends a gratuitous ARP at once)' },
];

/** The value of /proc/sys/`path` (e.g. "net/ipv4/conf/all/rp_filter"); ERR_ADDRESS if it cannot be read. */
export async function readSysctl(path: string): Promise<number> {
  try {
    return Number((await readFile(`/proc/sys/${path}`, 'utf8')).trim());
  } catch (error) {
    throw new MigrationError('ERR_ADDRESS', `cannot read /proc/sys/${path}: ${toMigrationError(error).message}`, {
      cause: error,
    });
  }
}

/**
 * Make each sysctl its value. Read first and write only what differs, so a read-only /proc/sys
 * (a container) is fine as long as the values were set when the namespace was made; the ones
 * that are wrong and cannot be written are named together in one error.
 */
export async function ensureSysctls(sysctls: readonly Sysctl[]): Promise<void> {
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
    `cannot set sysctls here (${toMigrationError(failed[0]!.error).message}): set them for this network namespace ` +
      `(compose: \`sysctls: [${settings.join(', ')}]\`; or sysctl -w): ${reasons.join('; ')}`,
    { cause: failed[0]!.error },
  );
}

/**
 * Make reverse-path filtering on `link` not strict (see the header); `parent` is the interface
 * replies leave through, for the error message.
 */
export async function ensureLooseRpFilter(link: string, parent: string): Promise<void> {
  const all = await readSysctl('net/ipv4/conf/all/rp_filter');
  const own = await readSysctl(`net/ipv4/conf/${link}/rp_filter`);
  if (Math.max(all, own) !== 1) return;
  try {
    await writeFile(`/proc/sys/net/ipv4/conf/${link}/rp_filter`, '2');
  } catch (error) {
    throw new MigrationError(
      'ERR_ADDRESS',
      `strict reverse-path filtering would drop the VM's traffic (replies leave through ${parent}) and ` +
        `net.ipv4.conf.${link}.rp_filter cannot be set here (${toMigrationError(error).message}): ` +
        'set net.ipv4.conf.all.rp_filter=2 (or 0) in this namespace (compose: `sysctls:`)',
      { cause: error },
    );
  }
}
