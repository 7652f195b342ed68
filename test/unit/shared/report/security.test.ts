/**
 * The report's `security` field: required by the JSON schema (null on plaintext, the TLS facts
 * otherwise), and one line in the human report that says which.
 */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { formatReport, REPORT_JSON_SCHEMA, type MigrationReport } from '@livemig/shared/report';
import { sampleReport } from '../../../helpers/report.ts';

const report = (security: MigrationReport['security']): MigrationReport => sampleReport({ security });

const TLS = { tls: '1.3', cipher: 'TLS_AES_256_GCM_SHA384', sourceName: 'a', destName: 'b', ticket: true };

describe('report.security', () => {
  const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);

  it('the schema takes null or the full TLS record, and refuses a report without the field', () => {
    expect(validate(report(null)), JSON.stringify(validate.errors)).toBe(true);
    expect(validate(report(TLS)), JSON.stringify(validate.errors)).toBe(true);
    const { security: _, ...without } = report(null);
    expect(validate(without)).toBe(false);
    expect(validate(report({ ...TLS, cipher: undefined } as unknown as MigrationReport['security']))).toBe(false);
  });

  it('the human report says plaintext, or who proved what over which cipher', () => {
    expect(formatReport(report(null))).toMatch(/security\s+none: plaintext, nobody authenticated/);
    expect(formatReport(report(TLS))).toMatch(
      /security\s+mutual TLS 1\.3 \(TLS_AES_256_GCM_SHA384\), a → b, with a ticket/,
    );
  });
});
