/**
 * The report says which migration it is, between which agents and when: `migrationId`, `agents`
 * and ISO start and end times are required by the JSON schema and shown in the human report.
 */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { formatReport, REPORT_JSON_SCHEMA, type MigrationReport } from '@livemig/shared/report';
import { sampleReport } from '../../../helpers/report.ts';

const ID = sampleReport().migrationId;
const report = sampleReport;

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
