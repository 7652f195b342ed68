/**
 * IPv4 addresses as the NIC's slots hold them: a u32 with the first octet in the high byte
 * (a.b.c.d = a<<24 | b<<16 | c<<8 | d), converted to and from dotted quads at the host's edge.
 */
import { MigrationError } from '../../errors.ts';

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** "a.b.c.d" → u32. Throws ERR_INVALID_ARGUMENT for anything but four decimal octets ≤ 255. */
export function ipv4ToU32(ip: string): number {
  const match = DOTTED_QUAD.exec(ip);
  if (match) {
    const a = Number(match[1]);
    const b = Number(match[2]);
    const c = Number(match[3]);
    const d = Number(match[4]);
    if (a <= 255 && b <= 255 && c <= 255 && d <= 255) return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
  }
  throw new MigrationError('ERR_INVALID_ARGUMENT', `"${ip}" is not an IPv4 address (a.b.c.d, each 0–255)`);
}

/** u32 → "a.b.c.d". Throws ERR_INVALID_ARGUMENT unless n is an integer in [0, 2^32). */
export function u32ToIpv4(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `${n} is not a u32 IPv4 address`);
  }
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}
