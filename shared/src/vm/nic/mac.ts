/** The MAC a VM at IPv4 `ip` gets: 02:00 (locally administered, unicast) then the four address bytes. */
export function macForIp(ip: string): string {
  const bytes = ip.split('.').map((part) => Number(part).toString(16).padStart(2, '0'));
  return ['02', '00', ...bytes].join(':');
}
