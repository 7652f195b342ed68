/**
 * sysctls.ts, read-only: these tests share the machine's network namespace, so they never write
 * a sysctl (the macvlan integration test sets them inside lab namespaces).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ensureSysctls, MACVLAN_SYSCTLS, readSysctl } from '../../../../shared/src/host/net/sysctls.ts';

const PATH = 'net/ipv4/conf/all/rp_filter';

describe('sysctls', () => {
  it('readSysctl reads /proc/sys as a number; a missing one is ERR_ADDRESS naming it', async () => {
    expect(await readSysctl(PATH)).toBe(Number(readFileSync(`/proc/sys/${PATH}`, 'utf8').trim()));
    await expect(readSysctl('net/ipv4/no_such_sysctl')).rejects.toMatchObject({
      code: 'ERR_ADDRESS',
      message: /cannot read \/proc\/sys\/net\/ipv4\/no_such_sysctl/,
    });
  });

  it('ensureSysctls writes nothing when every value is already right', async () => {
    const current = await readSysctl(PATH);
    await expect(ensureSysctls([{ key: 'net.ipv4.conf.all.rp_filter', want: current, why: '' }])).resolves.toBe(
      undefined,
    );
  });

  it('the macvlan set: arp_ignore=1, arp_announce=2, arp_notify=1, each with a reason', () => {
    expect(MACVLAN_SYSCTLS.map(({ key, want }) => `${key}=${want}`)).toEqual([
      'net.ipv4.conf.all.arp_ignore=1',
      'net.ipv4.conf.all.arp_announce=2',
      'net.ipv4.conf.all.arp_notify=1',
    ]);
    for (const { why } of MACVLAN_SYSCTLS) expect(why).toMatch(/^\(so .+\)$/);
  });
});
