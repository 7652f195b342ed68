/**
 * The dashboard's reducer on its own: what each input does to the model — the link to the agent,
 * migrations appearing from events or answers, never coming back to life once ended, rounds
 * estimated from polls and replaced by the report's, the bounds — with plain objects, no I/O.
 */
import { describe, expect, it } from 'vitest';
import type { IncomingInfo, MigrationInfo } from '@livemig/shared/control';
import { REPORT_SCHEMA, type MigrationReport } from '@livemig/shared/report';
import {
  inFlight,
  initialModel,
  MAX_MIGRATIONS,
  MAX_ROUNDS,
  reduce,
  roundBars,
  wantsReport,
  type DashboardInput,
  type DashboardModel,
  type TrackedMigration,
} from '../../../../cli/dashboard/model.ts';

const MiB = 1 << 20;
const URL = 'wss://agent-a:7171';

function outgoing(overrides: Partial<MigrationInfo> = {}): MigrationInfo {
  return {
    direction: 'outgoing',
    migrationId: 'm1',
    vm: 'vm1',
    mode: 'precopy',
    status: 'precopy',
    startedAt: 0,
    transferred: 0,
    remaining: 256 * MiB,
    total: 256 * MiB,
    duplicate: 0,
    normal: 0,
    dirtyPagesRate: null,
    mbps: null,
    dirtySyncCount: 1,
    cpuThrottlePercentage: 0,
    expectedDowntime: null,
    totalTime: 100,
    setupTime: 20,
    downtime: null,
    timeRemaining: null,
    passProgress: 0,
    pass: 0,
    postcopy: null,
    ...overrides,
  };
}

function incoming(overrides: Partial<IncomingInfo> = {}): IncomingInfo {
  return {
    direction: 'incoming',
    migrationId: 'in1',
    vm: 'vm2',
    mode: 'postcopy',
    status: 'postcopy',
    startedAt: 0,
    totalTime: 500,
    pagesReceived: 1000,
    bytesReceived: 1000 * 4096,
    total: 64 * MiB,
    postcopy: { pages: 16384, present: 8192, faults: 12, faultsServed: 11 },
    ...overrides,
  };
}

function report(overrides: Partial<MigrationReport> = {}): MigrationReport {
  return {
    schema: REPORT_SCHEMA,
    migrationId: 'm1',
    agents: { source: 'a', dest: 'b' },
    mode: 'precopy',
    outcome: 'completed',
    error: null,
    vm: { name: 'vm1', memoryBytes: 256 * MiB, pageSize: 4096, workload: 'idle' },
    times: { startedAt: '', endedAt: '', totalMs: 2710, downtimeMs: 41.5, setupMs: 20 },
    bytes: { wire: 270 * MiB, pagePayload: 260 * MiB },
    pages: { total: 65536, sent: 66000, zero: 0, resent: 464, faulted: 0 },
    rounds: [
      { index: 0, pages: 65536, bytes: 257 * MiB, ms: 2600, bandwidthBps: 1e8, dirtyAfter: 400 },
      { index: 1, pages: 400, bytes: 2 * MiB, ms: 20, bandwidthBps: 1e8, dirtyAfter: 0 },
    ],
    verify: { sourceDigest: null, destDigest: null, match: null },
    network: null,
    security: null,
    ...overrides,
  };
}

/** Fold inputs into a fresh model, each a millisecond after the last. */
function run(...inputs: Array<DashboardInput | ((at: number) => DashboardInput)>): DashboardModel {
  return inputs.reduce<DashboardModel>(
    (model, input, i) => reduce(model, typeof input === 'function' ? input(1000 + i) : input),
    initialModel(URL, 1000),
  );
}

const info = (i: MigrationInfo | IncomingInfo) => (at: number) => ({ type: 'migration-info', at, info: i }) as const;
const migrationEvent =
  (status: string, migrationId = 'm1', vm = 'vm1') =>
  (at: number) =>
    ({ type: 'event', at, event: 'MIGRATION', data: { migrationId, status, vm } }) as const;
const only = (model: DashboardModel): TrackedMigration => {
  expect(model.migrations).toHaveLength(1);
  return model.migrations[0]!;
};

describe('the link to the agent', () => {
  it('connecting, connected with its name, unreachable with why and when the next try is', () => {
    let model = initialModel(URL, 1000);
    expect(model.agent).toMatchObject({ url: URL, state: 'connecting', name: null, error: null });
    model = reduce(model, { type: 'connected', at: 1100, agentName: 'agent-a' });
    expect(model.agent).toMatchObject({ state: 'connected', since: 1100, name: 'agent-a' });
    model = reduce(model, { type: 'unreachable', at: 1200, error: 'ERR_CONNECTION: closed', retryAt: 1450 });
    expect(model.agent).toMatchObject({
      state: 'unreachable',
      since: 1200,
      error: 'ERR_CONNECTION: closed',
      retryAt: 1450,
    });
  });

  it('retries while unreachable keep the reason and the first moment it went', () => {
    let model = run(
      { type: 'connected', at: 1000, agentName: null },
      { type: 'unreachable', at: 2000, error: 'closed', retryAt: 2250 },
    );
    const connecting = reduce(model, { type: 'connecting', at: 2250 });
    expect(connecting).toBe(model); // nothing changes: the page keeps saying why
    model = reduce(connecting, { type: 'unreachable', at: 2300, error: 'ECONNREFUSED', retryAt: 2800 });
    expect(model.agent).toMatchObject({ state: 'unreachable', since: 2000, error: 'ECONNREFUSED', retryAt: 2800 });
  });

  it('a refused request is shown on a connected link, and cleared by the next connection', () => {
    let model = run({ type: 'connected', at: 1000, agentName: null });
    model = reduce(model, { type: 'request-failed', at: 1100, error: 'ERR_FORBIDDEN: no' });
    expect(model.agent).toMatchObject({ state: 'connected', error: 'ERR_FORBIDDEN: no' });
    model = reduce(model, { type: 'connected', at: 1200, agentName: null });
    expect(model.agent.error).toBeNull();
  });
});

describe('migrations', () => {
  it('appear from a MIGRATION event, learn their direction and figures from query-migrate, end with the report', () => {
    let model = run(migrationEvent('setup'));
    expect(only(model)).toMatchObject({ migrationId: 'm1', vm: 'vm1', status: 'setup', direction: null, ended: false });
    expect(inFlight(model)).toEqual(['m1']);
    model = reduce(model, info(outgoing({ transferred: 10 * MiB }))(1100));
    expect(only(model)).toMatchObject({ direction: 'outgoing', mode: 'precopy', status: 'precopy' });
    expect(only(model).info).toMatchObject({ transferred: 10 * MiB });
    model = reduce(model, migrationEvent('completed')(1200));
    expect(only(model).ended).toBe(true);
    expect(inFlight(model)).toEqual([]);
    expect(wantsReport(model, 'm1')).toBe(true);
    model = reduce(model, {
      type: 'event',
      at: 1300,
      event: 'MIGRATION_REPORT',
      data: { migrationId: 'm1', report: report() },
    });
    expect(only(model).report).toMatchObject({ outcome: 'completed', totalMs: 2710, downtimeMs: 41.5, rounds: 2 });
    expect(wantsReport(model, 'm1')).toBe(false);
  });

  it('an ended migration never goes back to running, but takes its final figures', () => {
    let model = run(migrationEvent('completed'), info(outgoing({ status: 'precopy', transferred: 5 })));
    expect(only(model)).toMatchObject({ status: 'completed', ended: true });
    expect(only(model).info).toMatchObject({ transferred: 5 });
    model = reduce(model, migrationEvent('precopy')(2000));
    expect(only(model).status).toBe('completed');
  });

  it('an incoming migration: no report to wait for', () => {
    const model = run(info(incoming()), migrationEvent('completed', 'in1', ''));
    expect(only(model)).toMatchObject({ direction: 'incoming', vm: 'vm2', ended: true });
    expect(wantsReport(model, 'in1')).toBe(false);
  });

  it('one the agent no longer knows (it restarted) is kept as lost, with its last figures', () => {
    let model = run(info(outgoing({ transferred: 7 })));
    model = reduce(model, { type: 'migration-gone', at: 1100, migrationId: 'm1' });
    expect(only(model)).toMatchObject({ ended: true, lost: true });
    expect(only(model).info).toMatchObject({ transferred: 7 });
    expect(wantsReport(model, 'm1')).toBe(false);
    // An id never seen, or one that ended, is not made up or changed.
    expect(reduce(model, { type: 'migration-gone', at: 1200, migrationId: 'nope' })).toBe(model);
    expect(reduce(model, { type: 'migration-gone', at: 1200, migrationId: 'm1' })).toBe(model);
  });

  it('newest first; at most MAX_MIGRATIONS, the oldest ended ones going first', () => {
    const inputs: Array<(at: number) => DashboardInput> = [migrationEvent('precopy', 'running-old')];
    for (let i = 0; i < MAX_MIGRATIONS + 5; i++) inputs.push(migrationEvent('completed', `done-${i}`));
    const model = run(...inputs);
    expect(model.migrations).toHaveLength(MAX_MIGRATIONS);
    expect(model.migrations[0]!.migrationId).toBe(`done-${MAX_MIGRATIONS + 4}`);
    expect(model.migrations.some((m) => m.migrationId === 'running-old')).toBe(true);
    expect(model.migrations.some((m) => m.migrationId === 'done-0')).toBe(false);
  });
});

describe('bytes per round', () => {
  const poll = (pass: number, transferred: number, status = 'precopy') => info(outgoing({ pass, transferred, status }));

  it('estimated from the first bytes seen in each round, the one in progress growing; the report replaces them', () => {
    let model = run(poll(0, 1 * MiB), poll(0, 100 * MiB), poll(1, 257 * MiB), poll(1, 258 * MiB));
    expect(roundBars(only(model))).toEqual([
      { index: 0, lastIndex: 0, bytes: 257 * MiB, exact: false, current: false },
      { index: 1, lastIndex: 1, bytes: 1 * MiB, exact: false, current: true },
    ]);
    model = reduce(model, { type: 'report', at: 2000, report: report() });
    expect(roundBars(only(model))).toEqual([
      { index: 0, lastIndex: 0, bytes: 257 * MiB, exact: true, current: false },
      { index: 1, lastIndex: 1, bytes: 2 * MiB, exact: true, current: false },
    ]);
  });

  it('a round whose start was not seen is left out; rounds missed between polls make one bar', () => {
    // Joined in round 2; then saw round 3 start; then missed rounds 4 and 5, and the start of 6.
    const model = run(poll(2, 300 * MiB), poll(3, 310 * MiB), poll(6, 330 * MiB), poll(6, 331 * MiB));
    expect(roundBars(only(model))).toEqual([{ index: 3, lastIndex: 5, bytes: 20 * MiB, exact: false, current: false }]);
    // Round 7 starts while the dashboard watches: its bar is back.
    const on = reduce(reduce(model, poll(7, 340 * MiB)(2000)), poll(7, 345 * MiB)(2001));
    expect(roundBars(only(on)).at(-1)).toEqual({ index: 7, lastIndex: 7, bytes: 5 * MiB, exact: false, current: true });
  });

  it("stop at the handoff: the post-copy push is nobody's round", () => {
    const model = run(poll(0, 1 * MiB), poll(0, 50 * MiB, 'postcopy-start'), poll(0, 200 * MiB, 'postcopy'));
    expect(roundBars(only(model))).toEqual([{ index: 0, lastIndex: 0, bytes: 50 * MiB, exact: false, current: false }]);
  });

  it('at most MAX_ROUNDS bars, the most recent', () => {
    const polls = Array.from({ length: MAX_ROUNDS + 10 }, (_, pass) => poll(pass, pass * MiB));
    const bars = roundBars(only(run(...polls)));
    expect(bars).toHaveLength(MAX_ROUNDS);
    expect(bars.at(-1)!.index).toBe(MAX_ROUNDS + 9);
    const many = report({
      rounds: Array.from({ length: 300 }, (_, index) => ({
        index,
        pages: 1,
        bytes: 1,
        ms: 1,
        bandwidthBps: 1,
        dirtyAfter: 1,
      })),
    });
    const reported = only(run({ type: 'report', at: 1, report: many }));
    expect(roundBars(reported)).toHaveLength(MAX_ROUNDS);
    expect(reported.report!.rounds).toBe(300);
  });

  it('none for an incoming migration, whose rounds the destination does not count', () => {
    expect(roundBars(only(run(info(incoming()))))).toEqual([]);
  });
});
