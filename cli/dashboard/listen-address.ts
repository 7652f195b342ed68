/**
 * Where the dashboard may listen. Its page has no login and shows every migration of the agent it
 * follows, so it is for this machine only: `--listen` must name a loopback address — an IP
 * literal in 127.0.0.0/8, ::1, or `localhost` — unless `--insecure-listen` says otherwise on
 * purpose. A host *name* other than localhost is refused: what it resolves to is not known
 * here (the shared isLoopback() takes "127.anything" for loopback, which a DNS name may be).
 * Pure: the address text in, a checked address or a coded error out.
 */
import { BlockList, isIP } from 'node:net';
import { formatHostPort, MigrationError, parseHostPort, type HostPort } from '@livemig/shared';

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** True for an IP literal in 127.0.0.0/8 or ::1 (IPv4-mapped forms too); a name is not one. */
export function isLoopbackIp(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return LOOPBACK.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** True for a host the dashboard may listen on without --insecure-listen. */
export function isLoopbackListenHost(host: string): boolean {
  return host.toLowerCase() === 'localhost' || isLoopbackIp(host);
}

/**
 * True for an HTTP Host header naming a loopback host — localhost, 127.x.y.z, [::1] — with
 * `port` (a browser always sends the port when it is not 80).
 */
export function isLoopbackHostHeader(host: string | undefined, port: number): boolean {
  if (host === undefined) return false;
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(host.trim());
  if (!match) return false;
  const given = match[3] === undefined ? 80 : Number(match[3]);
  return given === port && isLoopbackListenHost(match[1] ?? match[2]!);
}

/**
 * `--listen` checked: HOST:PORT (ERR_INVALID_ARGUMENT when it is not one), on loopback unless
 * `insecure` (ERR_INVALID_ARGUMENT saying why and what to do).
 */
export function checkListenAddress(text: string, insecure: boolean): HostPort {
  const address = parseHostPort(text, '--listen address');
  if (!insecure && !isLoopbackListenHost(address.host)) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `--listen ${formatHostPort(address)} is not a loopback address: the dashboard has no login, so anyone ` +
        `who can reach it would see this agent's migrations. Listen on 127.0.0.1 or [::1] and reach it through ` +
        `an SSH tunnel (ssh -L 8080:127.0.0.1:8080 HOST), or give --insecure-listen to serve it there anyway`,
    );
  }
  return address;
}
