/**
 * What parallel bulk channels (multifd, `--channels N`, issue 18) add to the rate pre-copy rounds
 * move pages at, for the model: pure.
 *
 * With one channel the engine moves pages on one thread per side: read, hash and frame them at the
 * source, receive, hash and account for them at the destination. On a link slower than that (lan
 * and wan here) the link is the limit, and parallel channels change nothing: the same bytes cross
 * the same link. Where the engine is the limit — loopback, a fast link — N channels spread that
 * work over N worker threads per side, as far as the cores allow (both ends share this machine's
 * two on loopback). So the model scales the measured bandwidth by the speed-up measured here when
 * the measured bandwidth is the engine's (at or above ENGINE_BOUND_FRACTION of ONE_CHANNEL_BPS),
 * and leaves it when it is a link's. The stop-and-copy set and post-copy use the main connection:
 * their rate is unchanged. (Each round after the first also waits for the previous round's
 * acknowledgement, the barrier: one RTT a round, not modelled — under a millisecond here.)
 *
 * Measured (npx tsx bench/multifd-s1.ts 1 2 3: S1 idle 1 GiB random, loopback, plaintext, 3 runs
 * of each N interleaved, on 2 cores shared with other work): round 0 median 1889 ms with one
 * channel, 1556 with 2, 2100 with 3 at a load average of 8-9 — the speed-ups below; at a load of
 * ~10, 5624 / 5439 / 5427 ms. Two channels help a little where a core is free; a third thread per
 * side does not fit two cores. Figures to re-measure on a machine of one's own.
 */
import type { LinkEstimate, TechniqueOptions } from './types.ts';

/** Pages per second one channel's engine moves here (S1 over loopback, --channels 1), as bytes/s. */
export const ONE_CHANNEL_BPS = 568e6;

/** A measured bandwidth at or above this fraction of ONE_CHANNEL_BPS is the engine's, not a link's. */
export const ENGINE_BOUND_FRACTION = 0.6;

/** S1's round-0 rate with N parallel channels over its rate with one (index N; 0 and 1: none). */
export const CHANNEL_SPEEDUP: readonly number[] = [1, 1, 1.21, 0.9];

/** The speed-up N channels give where the engine is the limit (the last measured for N beyond). */
export function channelSpeedup(channels: number): number {
  if (!(channels > 1)) return 1;
  return CHANNEL_SPEEDUP[Math.min(Math.floor(channels), CHANNEL_SPEEDUP.length - 1)] ?? 1;
}

/** The rate pre-copy rounds move pages at with `channels` parallel channels, given what one channel measured. */
export function channelsBandwidthBps(bandwidthBps: number, channels: number | undefined): number {
  if (channels === undefined || channels < 2) return bandwidthBps;
  return bandwidthBps >= ENGINE_BOUND_FRACTION * ONE_CHANNEL_BPS
    ? bandwidthBps * channelSpeedup(channels)
    : bandwidthBps;
}

/** The inputs with the link's rates as pre-copy rounds see them with the technique's channels. */
export function withChannels<T extends { link: LinkEstimate; options?: TechniqueOptions }>(input: T): T {
  const channels = input.options?.channels;
  if (channels === undefined || channels < 2) return input;
  const { link } = input;
  return {
    ...input,
    link: {
      ...link,
      bandwidthBps: channelsBandwidthBps(link.bandwidthBps, channels),
      ...(link.resendBandwidthBps === undefined
        ? {}
        : { resendBandwidthBps: channelsBandwidthBps(link.resendBandwidthBps, channels) }),
    },
  };
}
