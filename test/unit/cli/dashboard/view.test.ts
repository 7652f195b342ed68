/**
 * What the page is sent: each figure as its number and its text, unknown figures as "unknown"
 * (never 0), the progress bar's share and what it is a share of, the report's verdict, the
 * agent line — from models built by the reducer, so the two are tested together.
 */
import { describe, expect, it } from 'vitest';
import type { IncomingInfo, MigrationInfo } from '@livemig/shared/control';
import { REPORT_SCHEMA, type MigrationReport } from '@livemig/shared/report';
import { initialModel, reduce, type DashboardInput, type DashboardModel } from '../../../../cli/dashboard/model.ts';
import { agentText, pageView, type MigrationView } from '../../../../cli/dashboard/view.ts';

const MiB = 1 << 20;

function outgoing(overrides: Partial<MigrationInfo> = {}): MigrationInfo {
  return {
    direction: 'outgoing',
    migrationId: 'm1',
    vm: 'vm1',
    mode: 'precopy',
    status: 'precopy',
    startedAt: 0,
    transferred: 100 * MiB,
    remaining: 156 * MiB,
    total: 256 * MiB,
    duplicate: 0,
    normal: 25_600,
    dirtyPagesRate: null,
    mbps: 800,
    dirtySyncCount: 1,
    cpuThrottlePercentage: 0,
    expectedDowntime: null,
    totalTime: 1_050,
    setupTime: 20,
    downtime: null,
    timeRemaining: 1_560,
    passProgress: 0.39,
    pass: 0,
    postcopy: null,
    ...overrides,
  };
}

function fold(...inputs: DashboardInput[]): DashboardModel {
  return inputs.reduce(reduce, initialModel('ws://127.0.0.1:7171', 0));
}

function one(model: DashboardModel): MigrationView {
  const { migrations } = pageView(model, 5000);
  expect(migrations).toHaveLength(1);
  return migrations[0]!;
}

const field = (view: MigrationView, key: string) => view.figures.find((f) => f.key === key);

describe('a migration as the page shows it', () => {
  it('outgoing pre-copy: the round and its share as the bar, figures with numbers and text, unknown ones "unknown"', () => {
    const view = one(fold({ type: 'migration-info', at: 1, info: outgoing() }));
    expect(view).toMatchObject({ id: 'm1', vm: 'vm1', direction: 'outgoing', mode: 'pre-copy', ended: false });
    expect(view.headline).toBe('outgoing pre-copy · precopy · round 0');
    expect(view.progress).toEqual({ share: 0.39, text: 'round 0: 39% of its pages sent' });
    expect(field(view, 'transferred')).toEqual({
      key: 'transferred',
      label: 'sent',
      value: 100 * MiB,
      text: '100.0 MiB',
    });
    expect(field(view, 'rate')).toMatchObject({ value: 100e6, text: '100.0 MB/s' });
    expect(field(view, 'dirty-rate')).toEqual({ key: 'dirty-rate', label: 'dirty rate', value: null, text: 'unknown' });
    expect(field(view, 'expected-downtime')).toMatchObject({ value: null, text: 'unknown' });
    expect(field(view, 'eta')).toMatchObject({ value: 1560, text: '1.6 s' });
    expect(view.rounds).toEqual([{ label: 'r0', bytes: 100 * MiB, text: '≈100.0 MiB', exact: false, current: true }]);
    expect(view.report).toBeNull();
  });

  it('dirty rate in pages and bytes per second; expected downtime once a round ended', () => {
    const view = one(
      fold({
        type: 'migration-info',
        at: 1,
        info: outgoing({ dirtyPagesRate: 2500, expectedDowntime: 42.25, pass: 1 }),
      }),
    );
    expect(field(view, 'dirty-rate')).toMatchObject({ value: 2500, text: '2500 pages/s (10.2 MB/s)' });
    expect(field(view, 'expected-downtime')).toMatchObject({ value: 42.25, text: '42.3 ms' });
  });

  it('post-copy: the share of pages at the destination, faults served', () => {
    const postcopy = { pages: 1000, present: 250, absentAtSwitchover: 900, fetchedOnDemand: 30, pushed: 120 };
    const view = one(
      fold({ type: 'migration-info', at: 1, info: outgoing({ mode: 'postcopy', status: 'postcopy', postcopy }) }),
    );
    expect(view.progress).toEqual({ share: 0.25, text: '25% of pages at the destination' });
    expect(field(view, 'fetched-on-demand')).toMatchObject({ value: 30 });
    expect(view.headline).toBe('outgoing post-copy · postcopy');
  });

  it('incoming: bytes received, faults; no share to show until post-copy', () => {
    const info: IncomingInfo = {
      direction: 'incoming',
      migrationId: 'in',
      vm: 'vm2',
      mode: 'precopy',
      status: 'receiving',
      startedAt: 0,
      totalTime: 900,
      pagesReceived: 2048,
      bytesReceived: 8 * MiB,
      total: 64 * MiB,
      postcopy: null,
    };
    const view = one(fold({ type: 'migration-info', at: 1, info }));
    expect(view.progress).toEqual({ share: null, text: 'receiving: receiving' });
    expect(field(view, 'transferred')).toMatchObject({ label: 'page bytes received', value: 8 * MiB });
    expect(view.rounds).toEqual([]);
  });

  it('completed: a full bar, the report verdict with its total time, post-copy fault latency', () => {
    const report: MigrationReport = {
      schema: REPORT_SCHEMA,
      migrationId: 'm1',
      agents: { source: 'a', dest: 'b' },
      mode: 'hybrid',
      outcome: 'completed',
      error: null,
      vm: { name: 'vm1', memoryBytes: 256 * MiB, pageSize: 4096, workload: 'idle' },
      times: { startedAt: '', endedAt: '', totalMs: 2710, downtimeMs: 41.5, setupMs: 20 },
      bytes: { wire: 270 * MiB, pagePayload: 260 * MiB },
      pages: { total: 65536, sent: 66000, zero: 0, resent: 464, faulted: 3 },
      rounds: [{ index: 0, pages: 65536, bytes: 257 * MiB, ms: 2600, bandwidthBps: 1e8, dirtyAfter: 400 }],
      verify: { sourceDigest: null, destDigest: null, match: null },
      network: null,
      security: null,
      postcopy: {
        absentAtSwitchover: 400,
        pagesFetchedOnDemand: 3,
        pagesPushed: 397,
        faults: 3,
        faultLatencyMs: { p50: 0.4, p99: 1.2, max: 1.5 },
        vcpuBlockedMs: 2,
        stepsPerSecBefore: 1,
        stepsPerSecDuring: 1,
        postcopyMs: 30,
        recoveries: 0,
      },
    };
    const view = one(
      fold({ type: 'migration-info', at: 1, info: outgoing({ downtime: null }) }, { type: 'report', at: 2, report }),
    );
    expect(view).toMatchObject({ status: 'completed', ended: true, outcome: 'completed' });
    expect(view.progress).toEqual({ share: 1, text: 'completed' });
    expect(view.report).toEqual({ outcome: 'completed', totalMs: 2710, text: 'completed in 2.71 s, downtime 41.5 ms' });
    expect(field(view, 'total-time')).toMatchObject({ value: 2710, text: '2.71 s' });
    expect(field(view, 'fault-latency-p99')).toMatchObject({ value: 1.2, text: '1.20 ms' });
    expect(view.rounds).toEqual([{ label: 'r0', bytes: 257 * MiB, text: '257.0 MiB', exact: true, current: false }]);
    // One figure per key: the report's downtime, not the live one beside it.
    const keys = view.figures.map((f) => f.key);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('failed: the error in the verdict; lost: a note', () => {
    const failed = one(
      fold(
        { type: 'event', at: 1, event: 'MIGRATION', data: { migrationId: 'm1', status: 'failed', vm: 'vm1' } },
        {
          type: 'report',
          at: 2,
          report: {
            schema: REPORT_SCHEMA,
            migrationId: 'm1',
            agents: { source: 'a', dest: null },
            mode: 'precopy',
            outcome: 'failed',
            error: { code: 'ERR_CONNECTION', message: 'refused' },
            vm: { memoryBytes: 1, pageSize: 4096, workload: 'idle' },
            times: {
              startedAt: '',
              endedAt: '',
              totalMs: 12,
              downtimeMs: null,
              downtimeNote: 'never paused',
              setupMs: 12,
            },
            bytes: { wire: 0, pagePayload: 0 },
            pages: { total: 1, sent: 0, zero: 0, resent: 0, faulted: 0 },
            rounds: [],
            verify: { sourceDigest: null, destDigest: null, match: null },
            network: null,
            security: null,
          },
        },
      ),
    );
    expect(failed.report!.text).toBe(
      'failed in 12.0 ms, no downtime measured (never paused) — ERR_CONNECTION: refused',
    );
    expect(failed.progress.share).toBeNull();
    const lost = one(
      fold({ type: 'migration-info', at: 1, info: outgoing() }, { type: 'migration-gone', at: 2, migrationId: 'm1' }),
    );
    expect(lost.note).toMatch(/no longer knows/);
  });
});

describe('the agent line', () => {
  const link = initialModel('wss://agent-a:7171', 0).agent;
  it('says connecting, connected (with the certificate name), unreachable since when, why and when it retries', () => {
    expect(agentText(link, 0)).toBe('connecting to wss://agent-a:7171…');
    expect(agentText({ ...link, state: 'connected', name: 'agent-a' }, 0)).toBe(
      'connected to agent-a (wss://agent-a:7171)',
    );
    expect(
      agentText({ ...link, state: 'unreachable', since: 1000, error: 'ERR_CONNECTION: closed', retryAt: 5000 }, 4000),
    ).toBe('agent unreachable since 3.0 s: ERR_CONNECTION: closed; retrying in 1.0 s');
  });
});
