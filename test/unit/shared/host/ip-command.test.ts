/** runIp (ip-command.ts): stdout on success; ERR_ADDRESS naming the command and what ip said. */
import { expect, it } from 'vitest';
import { isNoSuchLink, runIp } from '../../../../shared/src/host/net/ip-command.ts';
import { succeeds } from '../../../../cli/lab/sh.ts';
import { describeWhenAvailable } from '../../../helpers/prerequisites.ts';

const unavailable = succeeds('ip', '-V') ? undefined : 'iproute2 (`ip`) is not installed';

describeWhenAvailable('runIp', unavailable, () => {
  it("resolves with ip's stdout", async () => {
    const [lo] = JSON.parse(await runIp(['-j', 'link', 'show', 'dev', 'lo'])) as { ifname: string }[];
    expect(lo?.ifname).toBe('lo');
  });

  it('fails with ERR_ADDRESS naming the command and what ip said; isNoSuchLink tells a missing link', async () => {
    const error: unknown = await runIp(['link', 'show', 'dev', 'lmvnosuch0']).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_ADDRESS', message: /^`ip link show dev lmvnosuch0` failed: .+/ });
    expect(isNoSuchLink(error)).toBe(true);
    const other: unknown = await runIp(['link', 'frobnicate']).catch((e: unknown) => e);
    expect(other).toMatchObject({ code: 'ERR_ADDRESS' });
    expect(isNoSuchLink(other)).toBe(false);
    expect(isNoSuchLink(new Error('Cannot find device "x"'))).toBe(false); // only runIp's errors
  });
});
