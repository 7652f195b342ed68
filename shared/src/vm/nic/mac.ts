import { ipv4ToU32 } from './ipv4.ts';

/** The MAC a VM at IPv4 `ip` gets: 02:00 (locally administered, unicast) then the four address bytes. */
export function macForIp(ip: string): string {
  const hex = ipv4ToU32(ip).toString(16).padStart(8, '0');
  return `02:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}:${hex.slice(6, 8)}`;
}
