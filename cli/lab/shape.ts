/**
 * Shaping a link to a profile with whatever this kernel has, and saying which mechanism served
 * each property:
 *   rate   tc tbf on the device (its egress: every host shapes what it sends, so both
 *          directions of a host-to-host path are shaped) — under netem when netem exists;
 *   loss   netem where the kernel has sch_netem, else nftables `numgen random` drop on input;
 *   delay  netem where available, else nothing here: the caller must put a userspace delay relay
 *          (delay-relay.ts) on the agents' path, and `delay: 'relay'` says so.
 * One function shapes one device; the lab calls it per host namespace, and `livemig lab shape`
 * calls it in a container on its own eth0.
 */
import { sh } from './sh.ts';
import type { LinkProfile } from './profiles.ts';
import type { Lab } from './topology.ts';

export interface ShapingMechanisms {
  rate: 'tbf';
  loss: 'none' | 'netem' | 'nftables';
  delay: 'none' | 'netem' | 'relay';
}

/** Run a command in the namespace being shaped. */
export type Exec = (args: string[]) => string;

/** Shape `dev` to `profile`: netem (delay, loss) with tbf under it when the kernel has netem, else tbf + nftables. */
export function shapeDevice(exec: Exec, dev: string, profile: LinkProfile): ShapingMechanisms {
  const bits = `${Math.round(profile.rateBps * 8)}bit`;
  // Burst: at least one timer tick of traffic (HZ 250) and a few full-size packets.
  const burst = `${Math.max(32 * 1024, Math.ceil(profile.rateBps / 250))}b`;
  const tbf = ['tbf', 'rate', bits, 'burst', burst, 'latency', '100ms'];
  const netemArgs = [
    'delay',
    `${profile.rttMs / 2}ms`,
    ...(profile.loss > 0 ? ['loss', `${profile.loss * 100}%`] : []),
  ];
  let netem = true;
  try {
    exec(['tc', 'qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'netem', ...netemArgs]);
  } catch {
    netem = false;
  }
  if (netem) {
    exec(['tc', 'qdisc', 'add', 'dev', dev, 'parent', '1:1', 'handle', '10:', ...tbf]);
  } else {
    exec(['tc', 'qdisc', 'add', 'dev', dev, 'root', ...tbf]);
    if (profile.loss > 0) {
      const perHundredThousand = String(Math.round(profile.loss * 100_000));
      exec(['nft', 'add', 'table', 'inet', 'lmlab']);
      exec(['nft', 'add', 'chain', 'inet', 'lmlab', 'input', '{ type filter hook input priority 0; }']);
      exec([
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
      ]);
    }
  }
  return {
    rate: 'tbf',
    loss: profile.loss === 0 ? 'none' : netem ? 'netem' : 'nftables',
    delay: profile.rttMs <= 1 ? 'none' : netem ? 'netem' : 'relay',
  };
}

/** Shape every host's link of the lab to `profile`. */
export function shapeLab(lab: Lab, profile: LinkProfile): ShapingMechanisms {
  let mechanisms: ShapingMechanisms | undefined;
  for (const host of lab.hosts.values()) {
    mechanisms = shapeDevice((args) => sh('ip', 'netns', 'exec', host.ns, ...args), host.dev, profile);
  }
  return mechanisms ?? { rate: 'tbf', loss: 'none', delay: 'none' };
}
