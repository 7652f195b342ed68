/**
 * A diagnostic for bench/postcopy-lan.ts (LIVEMIG_BENCH_POSTCOPY_LAN_QDISC=prio): re-shape one lab
 * host's egress so that the migration's bulk connection no longer shares a queue with everything
 * else. The lab's own shaping (cli/lab/shape.ts) is one tbf per host: the background push, the
 * fault answers (their own TCP connection to the destination's fault thread) and anything else
 * leave through one FIFO, so a fault answer waits behind whatever bulk data is queued. Here the
 * same rate is kept by an htb class, under which packets to the destination's main data port (the
 * bulk) go to a low-priority class with a tbf-sized byte FIFO, and every other packet (fault
 * channel, control, pings) to a high-priority one that htb serves first. This kernel has htb,
 * tbf and the fifos but no fq_codel/sfq/prio, hence a classifier on the port.
 *
 * It is not a fix of the lab (a real 1 Gbit/s link has no such queue either way): it shows how
 * much of the fault latency on lan is that shared queue, by taking it away.
 */
import { sh } from '../cli/lab/sh.ts';
import type { LinkProfile } from '../cli/lab/profiles.ts';
import type { Lab } from '../cli/lab/topology.ts';

/** Replace `host`'s eth0 root qdisc: bulk (TCP/UDP to `bulkPort`) low priority, the rest high, together at the profile's rate. */
export function prioritiseAllButBulk(lab: Lab, host: string, bulkPort: number, profile: LinkProfile): void {
  if (!Number.isInteger(bulkPort) || bulkPort <= 0 || bulkPort > 65535) {
    throw new Error(`lan-priority-qdisc: bad bulk port ${bulkPort}`);
  }
  const { ns, dev } = lab.host(host);
  const tc = (...args: string[]): string => sh('ip', 'netns', 'exec', ns, 'tc', ...args);
  const bits = (bps: number): string => `${Math.round(bps * 8)}bit`;
  // The same burst as the lab's tbf (one 250 Hz tick of traffic), so htb keeps the rate as well as tbf did.
  const burst = `${Math.max(32 * 1024, Math.ceil(profile.rateBps / 250))}b`;
  const shaped = ['burst', burst, 'cburst', burst, 'quantum', '60000'];
  // The bulk FIFO holds what the lab's tbf could (latency 100 ms at the rate, plus the burst).
  const bulkLimit = String(Math.round(profile.rateBps * 0.1) + Math.max(32 * 1024, Math.ceil(profile.rateBps / 250)));
  tc('qdisc', 'del', 'dev', dev, 'root');
  tc('qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '10');
  tc('class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:1', 'htb', 'rate', bits(profile.rateBps), ...shaped);
  for (const [id, share, prio] of [
    ['1:10', 0.1, '0'],
    ['1:20', 0.9, '1'],
  ] as const) {
    tc(
      'class',
      'add',
      'dev',
      dev,
      'parent',
      '1:1',
      'classid',
      id,
      'htb',
      'rate',
      bits(profile.rateBps * share),
      'ceil',
      bits(profile.rateBps),
      'prio',
      prio,
      ...shaped,
    );
  }
  tc('qdisc', 'add', 'dev', dev, 'parent', '1:10', 'handle', '10:', 'pfifo', 'limit', '1000');
  tc('qdisc', 'add', 'dev', dev, 'parent', '1:20', 'handle', '20:', 'bfifo', 'limit', bulkLimit);
  tc(
    'filter',
    'add',
    'dev',
    dev,
    'parent',
    '1:',
    'protocol',
    'ip',
    'prio',
    '1',
    'u32',
    'match',
    'ip',
    'dport',
    String(bulkPort),
    '0xffff',
    'flowid',
    '1:20',
  );
}

/** Bytes sent through each of the two classes so far ({} when tc cannot say): where the traffic went. */
export function classBytes(lab: Lab, host: string): { priority?: number; bulk?: number } {
  const { ns, dev } = lab.host(host);
  let text: string;
  try {
    // This tc prints htb classes as text even with -j.
    text = sh('ip', 'netns', 'exec', ns, 'tc', '-s', 'class', 'show', 'dev', dev);
  } catch {
    return {};
  }
  const sent = new Map<string, number>();
  for (const block of text.split(/^(?=class )/m)) {
    const handle = /^class \S+ (\S+)/.exec(block)?.[1];
    const bytes = /Sent (\d+) bytes/.exec(block)?.[1];
    if (handle !== undefined && bytes !== undefined) sent.set(handle, Number(bytes));
  }
  return { priority: sent.get('1:10'), bulk: sent.get('1:20') };
}
