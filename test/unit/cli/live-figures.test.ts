import { describe, expect, it } from 'vitest';
import type { IncomingInfo, MigrationInfo } from '@livemig/shared/control';
import { lineWidth } from '../../../cli/follow-migration.ts';
import { describeMigration, formatSpan, orUnknown, progressLine } from '../../../cli/live-figures.ts';

const MiB = 1 << 20;

/** Round 0 of a 512 MiB pre-copy, a tenth sent, nothing measured yet. */
function outgoing(overrides: Partial<MigrationInfo> = {}): MigrationInfo {
  return {
    direction: 'outgoing',
    migrationId: 'm1',
    vm: 'vm1',
    mode: 'precopy',
    status: 'precopy',
    startedAt: 0,
    transferred: 51 * MiB,
    remaining: 461 * MiB,
    total: 512 * MiB,
    duplicate: 0,
    normal: 13_056,
    dirtyPagesRate: null,
    mbps: null,
    dirtySyncCount: 1,
    cpuThrottlePercentage: 0,
    expectedDowntime: null,
    totalTime: 4_200,
    setupTime: 30,
    downtime: null,
    timeRemaining: null,
    passProgress: 0.1,
    pass: 0,
    postcopy: null,
    ...overrides,
  };
}

/** Post-copy of the same VM: 45 % of its pages at the destination. */
function inPostcopy(overrides: Partial<MigrationInfo> = {}): MigrationInfo {
  return outgoing({
    mode: 'postcopy',
    status: 'postcopy',
    remaining: 72_090 * 4096,
    mbps: 100,
    timeRemaining: 23_000,
    downtime: 12,
    postcopy: { pages: 131_072, present: 58_983, absentAtSwitchover: 131_072, fetchedOnDemand: 120, pushed: 58_862 },
    ...overrides,
  });
}

function incoming(overrides: Partial<IncomingInfo> = {}): IncomingInfo {
  return {
    direction: 'incoming',
    migrationId: 'm1',
    vm: 'vm1',
    mode: 'precopy',
    status: 'receiving',
    startedAt: 0,
    totalTime: 1_500,
    pagesReceived: 2_560,
    bytesReceived: 10 * MiB,
    total: 512 * MiB,
    postcopy: null,
    ...overrides,
  };
}

describe('orUnknown and formatSpan', () => {
  it('prints "unknown" for null and undefined, and formats anything else (0 included)', () => {
    expect(orUnknown(null, String)).toBe('unknown');
    expect(orUnknown(undefined, String)).toBe('unknown');
    expect(orUnknown(0, (n) => `${n} ms`)).toBe('0 ms');
  });

  it.each([
    [0, '0 ms'],
    [850, '850 ms'],
    [3_240, '3.2 s'],
    [42_900, '42 s'],
    [65_000, '1 m 05 s'],
    [7_380_000, '2 h 03 m'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatSpan(ms)).toBe(text);
  });
});

describe('describeMigration (livemig status)', () => {
  it('an outgoing round 0: remaining, elapsed and unknowns as "unknown" — no "0 µs" or "0 B dirty"', () => {
    const line = describeMigration(outgoing());
    expect(line).toContain('precopy, round 0');
    expect(line).toContain('461.0 MiB remaining');
    expect(line).toContain('elapsed 4.2 s');
    expect(line).toContain('ETA unknown');
    expect(line).toContain('expected downtime unknown');
    expect(line).toContain('unknown, elapsed'); // the rate
    expect(line).not.toMatch(/0 µs|0 B|dirty/);
  });

  it('measured figures are shown as measured', () => {
    const line = describeMigration(outgoing({ mbps: 100, timeRemaining: 36_000, expectedDowntime: 250 }));
    expect(line).toContain('12.5 MB/s');
    expect(line).toContain('ETA 36 s');
    expect(line).toContain('expected downtime 250.0 ms');
  });

  it("the vCPU's throttle while --auto-converge/--dirty-limit holds it (QMP cpu-throttle-percentage), nothing without", () => {
    expect(describeMigration(outgoing({ cpuThrottlePercentage: 60 }))).toMatch(/, vCPU throttled 60 %$/);
    expect(describeMigration(outgoing())).not.toContain('throttled');
  });

  it('post-copy: pages present and faults served from the source side', () => {
    const line = describeMigration(inPostcopy());
    expect(line).toContain('58983/131072 pages present');
    expect(line).toContain('120 fetched on demand');
    expect(line).toMatch(/^migration m1 of vm1 \(postcopy, outgoing\): postcopy, 58983/);
    expect(line).toContain('downtime 12.0 ms');
    expect(line).not.toContain('expected downtime');
  });

  it('an incoming migration: pages received; in post-copy pages present and faults served', () => {
    expect(describeMigration(incoming())).toBe(
      'incoming migration m1 of vm1 (precopy): receiving, 2560 pages received (10.0 MiB of page data), elapsed 1.5 s',
    );
    const postcopy = describeMigration(
      incoming({
        mode: 'postcopy',
        status: 'postcopy',
        postcopy: { pages: 131_072, present: 60_000, faults: 40, faultsServed: 38 },
      }),
    );
    expect(postcopy).toContain('postcopy, 60000/131072 pages present, 40 faults (38 served)');
  });
});

describe('progressLine (the live line of livemig migrate)', () => {
  const infos: Array<[string, MigrationInfo | undefined]> = [
    ['before any figures', undefined],
    ['round 0, nothing measured', outgoing()],
    ['round 3, all measured', outgoing({ pass: 3, mbps: 940, timeRemaining: 1_250, expectedDowntime: 280 })],
    ['post-copy', inPostcopy()],
    ['post-copy, link broken', inPostcopy({ status: 'postcopy-paused', timeRemaining: null, mbps: null })],
  ];

  it.each(infos)('is never wider than the width it is given (%s)', (_what, info) => {
    for (let width = 0; width <= 200; width++) {
      expect(progressLine(info, width).length, `width ${width}`).toBeLessThanOrEqual(width);
    }
  });

  it('at 80 columns, round 0: the round, a bar, the share of memory, elapsed and ETA (unknown)', () => {
    const line = progressLine(outgoing(), 79);
    expect(line).toMatch(/^precopy round 0 \[█+░+\] 10% of memory/);
    expect(line).toContain('elapsed 4.2 s');
    expect(line).toContain('ETA unknown');
  });

  it('post-copy shows the share of pages present at the destination, not the pass', () => {
    const line = progressLine(inPostcopy({ passProgress: 1 }), 79);
    expect(line).toMatch(/^postcopy \[█+░+\] 45% present/);
    expect(line).toContain('ETA 23 s');
    expect(line).not.toContain('100%');
  });

  it('gives up the least useful first: downtime, the rate, the bar, elapsed, the ETA; the phase and share last', () => {
    const info = outgoing({ pass: 3, mbps: 940, timeRemaining: 1_250, expectedDowntime: 280 });
    const wide = progressLine(info, 200);
    expect(wide).toContain('expected downtime 280.0 ms');
    expect(wide).toContain('117.5 MB/s');
    expect(wide).toContain('% of memory this round');
    const at80 = progressLine(info, 79);
    expect(at80).not.toContain('expected downtime');
    expect(at80).toContain('[');
    const at50 = progressLine(info, 50);
    expect(at50).not.toContain('[');
    expect(at50).toContain('elapsed');
    expect(at50).toContain('ETA 1.3 s');
    // The ETA outlasts elapsed; the phase and the share outlast both.
    expect(progressLine(info, 30)).toBe('precopy r3 10% · ETA 1.3 s');
    expect(progressLine(info, 16)).toBe('precopy r3 10%');
  });

  it('the bar takes the room left, up to 30 characters', () => {
    const bar = (line: string) => /\[([█░]+)\]/.exec(line)?.[1]?.length;
    expect(bar(progressLine(outgoing(), 79))).toBeGreaterThanOrEqual(10);
    expect(bar(progressLine(outgoing(), 300))).toBe(30);
  });

  it('lineWidth: the terminal’s columns less one, 80 when it has none', () => {
    expect(lineWidth({ columns: 80 })).toBe(79);
    expect(lineWidth({ columns: 1 })).toBe(0);
    const stdout = process.stdout.columns;
    expect(lineWidth({})).toBe((stdout || 80) - 1);
  });
});
