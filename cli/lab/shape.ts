/**
 * Shaping a host's link to a profile, with whatever this kernel has, and saying which mechanism
 * served each property:
 *   rate   tc tbf on the host's eth0 (its egress: every host shapes what it sends, so both
 *          directions of a host-to-host path are shaped);
 *   loss   netem where the kernel has sch_netem, else nftables `numgen random` drop on input;
 *   delay  netem where available, else a userspace delay relay on the agents' path (delay-relay.ts),
 *          which the caller must put there: `delay: 'relay'` says so.
 */
import { sh, succeeds } from './sh.ts';
import type { LinkProfile } from './profiles.ts';
import type { Lab } from './topology.ts';

export interface ShapingMechanisms {
  rate: 'tbf';
  loss: 'none' | 'netem' | 'nftables';
  delay: 'none' | 'netem' | 'relay';
}

/** Whether this kernel has sch_netem (probed on a throwaway namespace's loopback). */
export function kernelHasNetem(lab: Lab): boolean {
  const ns = lab.bridgeNs;
  const ok = succeeds('ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms');
  if (ok) succeeds('ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', 'lo', 'root');
  return ok;
}

/** Shape every host's link to `profile`. */
export function shapeLab(lab: Lab, profile: LinkProfile): ShapingMechanisms {
  const netem = kernelHasNetem(lab);
  for (const host of lab.hosts.values()) {
    const run = (...args: string[]): string => sh('ip', 'netns', 'exec', host.ns, ...args);
    const bits = `${Math.round(profile.rateBps * 8)}bit`;
    // Burst: at least one timer tick of traffic (HZ 250) and a few full-size packets.
    const burst = `${Math.max(32 * 1024, Math.ceil(profile.rateBps / 250))}b`;
    if (netem) {
      // netem for delay and loss, tbf under it for the rate.
      const netemArgs = ['delay', `${profile.rttMs / 2}ms`];
      if (profile.loss > 0) netemArgs.push('loss', `${profile.loss * 100}%`);
      run('tc', 'qdisc', 'add', 'dev', host.dev, 'root', 'handle', '1:', 'netem', ...netemArgs);
      run(
        'tc',
        'qdisc',
        'add',
        'dev',
        host.dev,
        'parent',
        '1:1',
        'handle',
        '10:',
        'tbf',
        'rate',
        bits,
        'burst',
        burst,
        'latency',
        '100ms',
      );
    } else {
      run('tc', 'qdisc', 'add', 'dev', host.dev, 'root', 'tbf', 'rate', bits, 'burst', burst, 'latency', '100ms');
      if (profile.loss > 0) {
        const perHundredThousand = String(Math.round(profile.loss * 100_000));
        run('nft', 'add', 'table', 'inet', 'lmlab');
        run('nft', 'add', 'chain', 'inet', 'lmlab', 'input', '{ type filter hook input priority 0; }');
        run(
          'nft',
          'add',
          'rule',
          'inet',
          'lmlab',
          'input',
          'numgen',
          'random',
          'mod',
          '100000',
          '<',
          perHundredThousand,
          'drop',
        );
      }
    }
  }
  return {
    rate: 'tbf',
    loss: profile.loss === 0 ? 'none' : netem ? 'netem' : 'nftables',
    delay: profile.rttMs <= 1 ? 'none' : netem ? 'netem' : 'relay',
  };
}
