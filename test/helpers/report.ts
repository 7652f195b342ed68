/**
 * Assertions on a migration's outcome that say why when they fail: the report's error, where
 * the VM runs, the switchover, the times and the rounds — not just "expected 'failed' to be
 * 'completed'".
 */
import { expect } from 'vitest';
import { REPORT_SCHEMA, type MigrationOutcome, type MigrationReport } from '@livemig/shared/report';

/** A report as a test holds it: in-process, or parsed from a CLI's --json output. */
export type ReportLike = Pick<MigrationReport, 'outcome'> &
  Partial<Pick<MigrationReport, 'mode' | 'error' | 'vmRunsOn' | 'switchover' | 'times' | 'rounds'>>;

/** Rounds beyond this many are elided in the middle (a non-converging run can have hundreds). */
const ROUNDS_SHOWN = 12;

/** The report's error, where the VM runs, the switchover, the times and the rounds, as JSON. */
export function explainReport(report: ReportLike): string {
  const rounds = report.rounds ?? [];
  const shown =
    rounds.length <= ROUNDS_SHOWN
      ? rounds
      : [
          ...rounds.slice(0, ROUNDS_SHOWN / 2),
          `… ${rounds.length - ROUNDS_SHOWN} more rounds …`,
          ...rounds.slice(-ROUNDS_SHOWN / 2),
        ];
  return (
    `migration ${report.mode ?? ''} ${report.outcome}: error ${JSON.stringify(report.error ?? null)}` +
    `; vmRunsOn ${JSON.stringify(report.vmRunsOn)}; switchover ${JSON.stringify(report.switchover)}` +
    `; times ${JSON.stringify(report.times)}; ${rounds.length} rounds ${JSON.stringify(shown)}`
  );
}

/**
 * The migration ended with `outcome`; when not, the failure prints the report's error and
 * rounds, after `context` (which migration this was) when given.
 */
export function expectOutcome(report: ReportLike, outcome: MigrationOutcome, context?: string): void {
  expect(report.outcome, `${context ? `${context}: ` : ''}${explainReport(report)}`).toBe(outcome);
}

/** The migration completed; when not, the failure prints the report's error and rounds. */
export function expectCompleted(report: ReportLike, context?: string): void {
  expectOutcome(report, 'completed', context);
}

/** A small completed pre-copy report with every required field, for tests of the report's shape. */
export function sampleReport(overrides: Partial<MigrationReport> = {}): MigrationReport {
  return {
    schema: REPORT_SCHEMA,
    migrationId: '3f2b8a1e-0c4d-4e5f-8a9b-0123456789ab',
    agents: { source: 'agent-a', dest: 'agent-b' },
    mode: 'precopy',
    outcome: 'completed',
    error: null,
    vm: { name: 'vm', memoryBytes: 4096, pageSize: 4096, workload: 'idle', init: 'zero', seed: 1 },
    times: {
      startedAt: '2026-12-02T06:00:00.000Z',
      endedAt: '2026-12-02T06:00:01.250Z',
      totalMs: 1250,
      downtimeMs: 3,
      setupMs: 40,
    },
    bytes: { wire: 5000, pagePayload: 4096 },
    pages: { total: 1, sent: 1, zero: 0, resent: 0, faulted: 0 },
    rounds: [],
    verify: { sourceDigest: 'a', destDigest: 'a', match: true },
    network: null,
    security: null,
    ...overrides,
  };
}
