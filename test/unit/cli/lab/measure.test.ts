import { describe, expect, it } from 'vitest';
import { checkProfile, profileDeparture } from '../../../../cli/lab/measure.ts';
import { PROFILES } from '../../../../cli/lab/profiles.ts';

const lan = PROFILES.lan!;
const wan = PROFILES.wan!;

describe('profileDeparture: which way a measured link misses its profile', () => {
  it('is null within 20 % of the rate and, on a sub-ms profile, under 2 ms of RTT', () => {
    expect(profileDeparture({ rateBps: lan.rateBps * 0.85, rttMs: 1.9 }, lan)).toBeNull();
    expect(profileDeparture({ rateBps: wan.rateBps * 1.15, rttMs: wan.rttMs * 0.85 }, wan)).toBeNull();
  });

  it('is "fast" when the link beats its profile: the shaping is not real', () => {
    expect(profileDeparture({ rateBps: lan.rateBps * 1.3, rttMs: 0.3 }, lan)).toBe('fast');
    expect(profileDeparture({ rateBps: wan.rateBps, rttMs: wan.rttMs * 0.5 }, wan)).toBe('fast');
    // Faster in rate, slower in RTT: still not shaped as asked — refused, not measured again.
    expect(profileDeparture({ rateBps: wan.rateBps * 2, rttMs: wan.rttMs * 2 }, wan)).toBe('fast');
  });

  it('is "slow" when the link only measures slower (a loaded machine)', () => {
    expect(profileDeparture({ rateBps: lan.rateBps * 0.87, rttMs: 2.04 }, lan)).toBe('slow');
    expect(profileDeparture({ rateBps: lan.rateBps * 0.7, rttMs: 0.3 }, lan)).toBe('slow');
    expect(profileDeparture({ rateBps: wan.rateBps, rttMs: wan.rttMs * 1.3 }, wan)).toBe('slow');
  });

  it('checkProfile refuses either departure with the figures', () => {
    expect(() => checkProfile({ rateBps: lan.rateBps * 0.87, rttMs: 2.04 }, lan)).toThrow(
      /lab link is not what profile "lan" asks: measured .* MB\/s, RTT 2\.04 ms/,
    );
    expect(() => checkProfile({ rateBps: lan.rateBps * 1.3, rttMs: 0.3 }, lan)).toThrow(/not what profile/);
    expect(() => checkProfile({ rateBps: lan.rateBps, rttMs: 0.3 }, lan)).not.toThrow();
  });
});
