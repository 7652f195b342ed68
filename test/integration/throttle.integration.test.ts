/**
 * Throttling the guest so pre-copy converges (issue 17, "Convergence"), with real agents over a
 * capped loopback link: --auto-converge makes a hot VM converge where plain pre-copy gives up,
 * the throttle never outlives the migration (the destination's vCPU is a new, unthrottled one;
 * a cancelled migration leaves the source's at full speed), and --dirty-limit holds the guest's
 * dirty rate under the cap.
 *
 * The VM: 16 MiB, zero but for a 4 MiB hot set written 10 000 times a second (round 0 sends only
 * what the guest wrote: the cold pages it reads are zero and never sent). Over a
 * 16 MB/s cap a hot round sends ~1000 pages (~260 ms) while the guest dirties ~940 of them
 * again: the dirty set never gets under a 150 ms limit (~590 pages) by itself. Throttled to
 * about 50 % it does. Pages travel raw (zero pages aside): the destinations offer only the
 * capabilities below, so no page encoding is negotiated — with XBZRLE deltas a hot set written
 * a word at a time is cheap to resend and converges by itself; these tests are about the throttle.
 */
import { Ajv } from 'ajv';
import { afterEach, describe, expect, it } from 'vitest';
import { formatReport, REPORT_JSON_SCHEMA, type MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { useFleet, type FleetAgent } from '../helpers/fleet.ts';
import { stopAll } from '../helpers/processes.ts';
import { expectCompleted, expectOutcome, explainReport } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();
afterEach(stopAll);

const RATE = 10_000;
const spec = parseVmSpec({
  memory: '16MiB',
  init: 'zero',
  workload: `hotset:wss=4MiB,rate=${RATE}`,
  seed: 7,
});
const LIMIT_MS = 150;
const link = { maxBandwidthBps: 16e6, downtimeLimitMs: LIMIT_MS, maxRounds: 12 };
const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);
/** Every capability but the page encodings: pages go raw. */
const RAW_PAGES = ['postcopy', 'fault-channel', 'setup-bitmap', 'zero-pages', 'disk', 'disk-prehash', 'signed-record'];
/** A destination that negotiates no page encoding. */
const destination = (): Promise<FleetAgent> => fleet.agent({ args: ['--capabilities', RAW_PAGES.join(',')] });

/** The VM's steps per second on `agent`, measured over `ms` from its step counter. */
async function stepsPerSec(agent: FleetAgent, ms = 400): Promise<number> {
  return fleet.ask(agent, async (client) => {
    const steps = async (): Promise<number> => (await client.request('query-vms', {})).vms[0]!.steps;
    const [a, t0] = [await steps(), performance.now()];
    await new Promise((resolve) => setTimeout(resolve, ms));
    const [b, t1] = [await steps(), performance.now()];
    return ((b - a) * 1000) / (t1 - t0);
  });
}

/** Pages dirtied during a round × page size ÷ its duration, bytes/s. */
const dirtyRate = (r: MigrationReport['rounds'][number]): number => (r.dirtyAfter * 4096 * 1000) / r.ms;

describe('auto-converge', () => {
  it('a hot VM that plain pre-copy cannot converge converges throttled, under the downtime limit; the oracle holds and the destination runs unthrottled', async () => {
    const [source1, dest1, source2, dest2] = await Promise.all([
      fleet.source('vm', spec),
      destination(),
      fleet.source('vm', spec),
      destination(),
    ]);
    const plain = await fleet.migrate(source1, dest1, { vm: 'vm', params: link });
    expectCompleted(plain);
    expect(['not-shrinking', 'max-rounds'], explainReport(plain)).toContain(plain.switchover?.reason);
    expect(plain.times.downtimeMs).toBeGreaterThan(LIMIT_MS);
    expect(plain.throttle).toBeUndefined();
    // Every pre-copy round still says what it cost the guest: nothing.
    expect(plain.rounds.slice(0, -1).every((r) => r.cpuThrottlePercent === 0)).toBe(true);

    const report = await fleet.migrate(source2, dest2, { vm: 'vm', params: { ...link, autoConverge: true } });
    expectCompleted(report);
    expect(report.switchover?.reason, explainReport(report)).toBe('converged');
    expect(report.switchover!.expectedDowntimeMs).toBeLessThanOrEqual(LIMIT_MS);
    // The rule counts the pending pages; the measured downtime adds what the guest dirtied while
    // the last round's ack came back (throttled) and the switchover's fixed costs (a few ms on
    // loopback): within 10 % of the limit, where plain pre-copy's was far over it.
    expect(report.times.downtimeMs!).toBeLessThan(LIMIT_MS * 1.1);
    expect(report.times.downtimeMs!).toBeLessThan(plain.times.downtimeMs!);
    // QEMU's schedule: nothing for the first two hot rounds, then 20 % and +10 % per round.
    const throttles = report.rounds.slice(0, -1).map((r) => r.cpuThrottlePercent!);
    const first = throttles.indexOf(20);
    expect(first, explainReport(report)).toBeGreaterThanOrEqual(2);
    expect(throttles.slice(0, first).every((p) => p === 0)).toBe(true);
    expect(throttles.slice(first)).toEqual([20, 30, 40, 50, 60, 70, 80, 90, 99].slice(0, throttles.length - first));
    const t = report.throttle!;
    expect(t).toMatchObject({ technique: 'auto-converge', initialPercent: 20, incrementPercent: 10, maxPercent: 99 });
    expect(t.peakPercent).toBeGreaterThanOrEqual(30);
    // The guest paid for it: slower by about the throttle while throttled, and the report says so.
    expect(t.unthrottledStepsPerSec).toBeGreaterThan(RATE * 0.9);
    expect(t.speedWhileThrottled).toBeLessThan(0.85);
    expect(t.speedWhileThrottled).toBeGreaterThan(0.2);
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(formatReport(report)).toMatch(
      /\n {2}auto-converge {6}throttled to \d+ % by round \d+ .*\n {2}guest cost {9}the guest ran at 0\.\d\d× its unthrottled speed/,
    );

    // The destination's vCPU is a new one: it runs at the workload's full rate.
    expect(await stepsPerSec(dest2)).toBeGreaterThan(RATE * 0.85);
    const oracle = await fleet.oracle(dest2, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  it('cancelled while throttled: the source VM runs at full speed again', async () => {
    const [source, dest] = await Promise.all([fleet.source('vm', spec), destination()]);
    const params = { ...link, autoConverge: true, cpuThrottleInitial: 60 };
    const report = await fleet.migrate(source, dest, { vm: 'vm', params }, async (client, migrationId) => {
      await waitUntil(
        async () => {
          const info = await client.request('query-migrate', { migrationId });
          return info?.direction === 'outgoing' && info.cpuThrottlePercentage === 60;
        },
        { what: 'query-migrate shows the vCPU throttled to 60 %' },
      );
      expect(await client.request('migrate-cancel', { migrationId })).toEqual({ cancelled: true });
    });
    expectOutcome(report, 'cancelled');
    expect(report.vmRunsOn).toBe('source');
    expect(report.throttle?.technique).toBe('auto-converge');
    const info = await fleet.ask(source, (client) =>
      client.request('query-migrate', { migrationId: report.migrationId }),
    );
    expect(info?.direction === 'outgoing' && info.cpuThrottlePercentage).toBe(0);
    expect(await stepsPerSec(source)).toBeGreaterThan(RATE * 0.85);
    const oracle = await fleet.oracle(source, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });
});

describe('dirty-limit', () => {
  it("holds the guest's dirty rate under the limit, and reports what that cost", async () => {
    const [source, dest] = await Promise.all([fleet.source('vm', spec), destination()]);
    const limitBps = 4e6;
    const params = { ...link, downtimeLimitMs: 20, maxRounds: 6, dirtyLimitBps: limitBps };
    const report = await fleet.migrate(source, dest, { vm: 'vm', params });
    expectCompleted(report);
    const precopy = report.rounds.slice(0, -1);
    // Round 0 runs unthrottled (the limit is derived at its end), and dirties far faster.
    expect(precopy[0]!.cpuThrottlePercent).toBe(0);
    const limited = precopy.filter((r) => r.cpuThrottlePercent! > 0);
    expect(limited.length, explainReport(report)).toBeGreaterThanOrEqual(2);
    // Tolerance: a round's rate is its distinct pages over its duration. The controller aims
    // from below (its first estimate is the start measurement's least saturated point, high),
    // the vCPU's pace is exact to ~1 ms of steps, and pages dirtied between the last harvest and
    // the round's clock starting (a few ms) count in it: 15 % per round of ≥ 50 ms, 10 % overall.
    // The first throttled round is left out of the per-round bound: its throttle comes from the
    // start measurement's curve so far (2–3 points at round 0's end); in full-suite runs it
    // measured 1.28× the cap once (269 pages while the guest ran 190 steps at 91 %: pages dirtied
    // around the switch from full speed count in it) and 1.5× once, throttled to 82 % when that
    // curve sampled only 64 pages of the hot set and showed no bend (start-dirty-rate.ts now
    // samples 2048 pages of small VMs too).
    for (const r of limited.slice(1).filter((r) => r.ms >= 50)) {
      expect(dirtyRate(r), `round ${r.index}: ${explainReport(report)}`).toBeLessThan(limitBps * 1.15);
    }
    const t = report.throttle!;
    expect(t.technique).toBe('dirty-limit');
    expect(t.dirtyLimitBps).toBe(limitBps);
    // Over all throttled rounds, that first one included: within 1.35× of the cap (unthrottled,
    // round 0 dirtied at ~5×).
    expect(t.throttledDirtyRateBps, explainReport(report)).toBeLessThan(limitBps * 1.35);
    expect(t.speedWhileThrottled).toBeLessThan(0.6);
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(formatReport(report)).toMatch(/dirty-limit\s+throttled to \d+ % by round \d+ \(limit 4\.0 MB\/s/);
    const oracle = await fleet.oracle(dest, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });
});
