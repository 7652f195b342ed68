/**
 * The report's `threads` and `prefault` sections (issue 18): threadsBetween() turns two snapshots
 * of a side's threads into CPU and wall ms per thread; checkSideThreads() and checkPrefault() take
 * the destination's figures apart as hostile input (refused with ERR_BAD_METADATA); the JSON
 * schema checks both sections; the text report shows a line per side and one for the pre-fault.
 */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import {
  checkPrefault,
  checkSideThreads,
  formatReport,
  MAX_THREADS,
  prefaultReport,
  REPORT_JSON_SCHEMA,
  threadsBetween,
  type PrefaultReport,
  type SideThreads,
} from '@livemig/shared/report';
import type { ThreadReading, ThreadSnapshot } from '@livemig/shared/vm';
import { MigrationError } from '@livemig/shared';
import { sampleReport } from '../../../helpers/report.ts';

const MS = 1e6; // ns per ms

const thread = (key: number, name: string, cpuMs: number | null, bornAt: number, endedAt?: number): ThreadReading => ({
  key,
  name,
  cpuNs: cpuMs === null ? null : cpuMs * MS,
  bornAt,
  endedAt,
});
const snapshot = (at: number, processCpuMs: number, threads: ThreadReading[]): ThreadSnapshot => ({
  at,
  processCpuNs: processCpuMs * MS,
  threads,
});

describe('threadsBetween', () => {
  const start = snapshot(1000, 500, [
    thread(0, 'main', 300, 0),
    thread(1, 'vcpu', 100, 10),
    thread(2, 'compress', 50, 20, 900), // ended before the window: not listed
  ]);
  const end = snapshot(3000, 2900, [
    thread(0, 'main', 1100, 0),
    thread(1, 'vcpu', 1500, 10),
    thread(3, 'prefault', 80, 1200, 1700), // born and ended inside the window
    thread(4, 'compress', 40, 1500),
    thread(5, 'compress', 0.1, 2000),
    thread(2, 'compress', 50, 20, 900),
  ]);
  const side = threadsBetween(start, end);

  it('gives each thread alive in the window its CPU and wall ms there, the main thread first, then by CPU', () => {
    expect(side.wallMs).toBe(2000);
    expect(side.cpuMs).toBe(2400);
    expect(side.threads.map((t) => t.name)).toEqual(['main', 'vcpu', 'prefault', 'compress', 'compress-2', 'other']);
    const by = Object.fromEntries(side.threads.map((t) => [t.name, t]));
    expect(by.main).toEqual({ name: 'main', cpuMs: 800, wallMs: 2000 });
    expect(by.vcpu).toEqual({ name: 'vcpu', cpuMs: 1400, wallMs: 2000 });
    // Born in the window: all it ever used counts; alive 500 ms of it.
    expect(by.prefault).toEqual({ name: 'prefault', cpuMs: 80, wallMs: 500 });
    expect(by.compress).toEqual({ name: 'compress', cpuMs: 40, wallMs: 1500 });
  });

  it('puts the process time no listed thread accounts for in `other`', () => {
    const other = side.threads.at(-1)!;
    expect(other.name).toBe('other');
    expect(other.cpuMs).toBeCloseTo(2400 - (800 + 1400 + 80 + 40 + 0.1), 6);
  });

  it('keeps null where a thread cannot be read (not Linux), and lists at most MAX_THREADS', () => {
    const many = Array.from({ length: 50 }, (_, i) => thread(i + 1, 'compress', i, 1500));
    const wide = threadsBetween(
      snapshot(1000, 0, [thread(0, 'main', null, 0)]),
      snapshot(2000, 5000, [thread(0, 'main', null, 0), ...many]),
    );
    expect(wide.threads).toHaveLength(MAX_THREADS);
    expect(wide.threads[0]).toEqual({ name: 'main', cpuMs: null, wallMs: 1000 });
    // The busiest are listed; the rest is in `other`.
    expect(wide.threads[1]!.cpuMs).toBe(49);
    const listed = wide.threads.slice(0, -1).reduce((sum, t) => sum + (t.cpuMs ?? 0), 0);
    expect(wide.threads.at(-1)!.cpuMs).toBeCloseTo(5000 - listed, 6);
  });
});

describe('checkSideThreads (the destination’s figures: hostile until checked)', () => {
  const good: SideThreads = {
    wallMs: 900,
    cpuMs: 700,
    threads: [
      { name: 'main', cpuMs: 500, wallMs: 900 },
      { name: 'vcpu', cpuMs: null, wallMs: 900 },
    ],
  };

  it('takes well-formed figures, as a fresh object of the known fields only', () => {
    const checked = checkSideThreads({ ...good, extra: 'x', threads: good.threads.map((t) => ({ ...t, evil: 1 })) });
    expect(checked).toEqual(good);
  });

  const bad: Array<[string, unknown]> = [
    ['not a map', [1, 2]],
    ['null', null],
    ['a NaN wall time', { ...good, wallMs: Number.NaN }],
    ['a negative CPU time', { ...good, cpuMs: -1 }],
    ['an infinite figure', { ...good, cpuMs: Number.POSITIVE_INFINITY }],
    ['an absurd figure', { ...good, wallMs: 1e12 }],
    ['threads not a list', { ...good, threads: {} }],
    [
      'too many threads',
      { ...good, threads: Array.from({ length: MAX_THREADS + 1 }, () => ({ name: 'x', cpuMs: 1, wallMs: 1 })) },
    ],
    ['a long name', { ...good, threads: [{ name: 'x'.repeat(33), cpuMs: 1, wallMs: 1 }] }],
    ['an empty name', { ...good, threads: [{ name: '', cpuMs: 1, wallMs: 1 }] }],
    ['a name with control characters', { ...good, threads: [{ name: 'a\u001b[2J', cpuMs: 1, wallMs: 1 }] }],
    ['a thread CPU given as text', { ...good, threads: [{ name: 'main', cpuMs: '5', wallMs: 1 }] }],
    ['a thread without wall time', { ...good, threads: [{ name: 'main', cpuMs: 5 }] }],
  ];
  it.each(bad)('refuses %s with ERR_BAD_METADATA', (_what, value) => {
    const checked = checkSideThreads(value);
    expect(checked).toBeInstanceOf(MigrationError);
    expect((checked as MigrationError).code).toBe('ERR_BAD_METADATA');
  });
});

describe('the pre-fault figures', () => {
  it('prefaultReport: off the critical path when done before the first pass’s last page', () => {
    const base = { pages: 100, touched: 100, setupAt: 1000, startedAt: 1040, firstPassAt: 3000 };
    expect(prefaultReport({ ...base, doneAt: 2000 })).toEqual({
      pages: 100,
      touched: 100,
      startMs: 40,
      ms: 960,
      firstPassMs: 2000,
      offCriticalPath: true,
    });
    expect(prefaultReport({ ...base, doneAt: 3500 }).offCriticalPath).toBe(false);
    expect(prefaultReport({ ...base, doneAt: undefined })).toMatchObject({ ms: null, offCriticalPath: false });
    expect(prefaultReport({ ...base, doneAt: 2000, firstPassAt: undefined })).toMatchObject({
      firstPassMs: null,
      offCriticalPath: null,
    });
  });

  const good: PrefaultReport = { pages: 10, touched: 10, startMs: 4, ms: 90, firstPassMs: 300, offCriticalPath: true };
  it('checkPrefault takes well-formed figures and nothing else', () => {
    expect(checkPrefault({ ...good, extra: 1 })).toEqual(good);
    expect(checkPrefault({ ...good, ms: null, firstPassMs: null, offCriticalPath: null })).toMatchObject({ ms: null });
  });
  it.each([
    ['not a map', 'prefault'],
    ['more touched than pages', { ...good, touched: 11 }],
    ['fractional pages', { ...good, pages: 1.5 }],
    ['a NaN duration', { ...good, ms: Number.NaN }],
    ['a negative start', { ...good, startMs: -3 }],
    ['a verdict that is not a boolean', { ...good, offCriticalPath: 'yes' }],
  ] as Array<[string, unknown]>)('checkPrefault refuses %s with ERR_BAD_METADATA', (_what, value) => {
    const checked = checkPrefault(value);
    expect(checked).toBeInstanceOf(MigrationError);
    expect((checked as MigrationError).code).toBe('ERR_BAD_METADATA');
  });
});

describe('the report with threads and prefault', () => {
  const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);
  const source: SideThreads = {
    wallMs: 2000,
    cpuMs: 2400,
    threads: [
      { name: 'main', cpuMs: 800, wallMs: 2000 },
      { name: 'vcpu', cpuMs: 1400, wallMs: 2000 },
      { name: 'compress', cpuMs: 0.1, wallMs: 500 },
      { name: 'other', cpuMs: 199.9, wallMs: 2000 },
    ],
  };
  const prefault: PrefaultReport = {
    pages: 32768,
    touched: 32768,
    startMs: 42,
    ms: 1090,
    firstPassMs: 2930,
    offCriticalPath: true,
  };

  it('passes the schema with and without the destination’s figures; the schema refuses a malformed section', () => {
    for (const report of [
      sampleReport({ threads: { source, dest: source }, prefault }),
      sampleReport({ threads: { source, dest: null } }),
    ]) {
      expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    }
    expect(validate(sampleReport({ threads: { source: { ...source, cpuMs: -1 }, dest: null } }))).toBe(false);
    expect(validate(sampleReport({ prefault: { ...prefault, offCriticalPath: 'yes' as unknown as boolean } }))).toBe(
      false,
    );
  });

  it('the text report says where each side’s cores went and how long the pre-fault took', () => {
    const text = formatReport(sampleReport({ threads: { source, dest: null }, prefault }));
    expect(text).toContain(
      'source threads     main 800.0 ms (40 %), vcpu 1.40 s (70 %), other 199.9 ms, 1 idle; 2.40 s CPU in 2.00 s = 1.2 cores',
    );
    expect(text).toContain('dest threads       none sent');
    expect(text).toContain(
      "pre-fault          32768 of 32768 pages in 1.09 s, from 42.0 ms after Setup: done 1.80 s before the first pass's last page arrived (off the critical path)",
    );
    expect(formatReport(sampleReport({}))).not.toContain('threads');
  });
});
