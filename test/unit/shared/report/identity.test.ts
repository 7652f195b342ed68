/**
 * The report says which migration it is, between which agents and when: `migrationId`, `agents`
 * and ISO start and end times are required by the JSON schema and shown in the human report.
 */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { formatReport, REPORT_JSON_SCHEMA, REPORT_SCHEMA, type MigrationReport } from '@livemig/shared/report';

const ID = '3f2b8a1e-0c4d-4e5f-8a9b-0123456789ab';

function report(overrides: Partial<MigrationReport> = {}): MigrationReport {
  return {
    schema: REPORT_SCHEMA,
    migrationId: ID,
    agents: { source: 'agent-a', dest: 'agent-b' },
    mode: 'precopy',
    outcome: 'completed',
    error: null,
    vm: { name: 'vm', memoryBytes: 4096, pageSize: 4096, workload: 'idle' },
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

describe('report identity: which migration, between whom, when', () => {
  const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);

  it('the schema requires migrationId, agents and ISO start/end times', () => {
    expect(validate(report()), JSON.stringify(validate.errors)).toBe(true);
    expect(validate(report({ agents: { source: 'agent-a', dest: null } })), JSON.stringify(validate.errors)).toBe(true);
    for (const key of ['migrationId', 'agents'] as const) {
      const { [key]: _, ...without } = report();
      expect(validate(without), key).toBe(false);
    }
    const times = report().times;
    const { startedAt: _s, ...noStart } = times;
    expect(validate(report({ times: noStart as MigrationReport['times'] }))).toBe(false);
    expect(validate(report({ times: { ...times, endedAt: '2026-12-02 06:00:01' } }))).toBe(false);
    expect(validate(report({ times: { ...times, startedAt: String(Date.now()) } }))).toBe(false);
  });

  it('the human report names the migration, both agents and the times', () => {
    const text = formatReport(report());
    expect(text).toMatch(new RegExp(`migration\\s+${ID}`));
    expect(text).toMatch(/agents\s+agent-a → agent-b/);
    expect(text).toMatch(/when\s+2026-12-02T06:00:00\.000Z → 2026-12-02T06:00:01\.250Z/);
    expect(formatReport(report({ agents: { source: 'agent-a', dest: null } }))).toMatch(
      /agents\s+agent-a → \(never reached\)/,
    );
  });
});
