/**
 * The report's references to host content (dedup-host): `encodings.dedup.host` — contents the
 * destination offered, pages sent as references to them, the table's bytes there and its build
 * time — checked by the JSON schema when present (a report without it stays valid), and shown
 * by the text report as one line under encodings.
 */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { formatReport, REPORT_JSON_SCHEMA, type EncodingsReport } from '@livemig/shared/report';
import { sampleReport } from '../../../helpers/report.ts';

const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);

function encodings(dedup: EncodingsReport['dedup']): EncodingsReport {
  return { xbzrle: null, dedup, compression: null, encodeMs: 12.5, decisions: [] };
}

describe('encodings.dedup.host in the report', () => {
  const host = { offered: 512, pages: 1234, tableBytes: 512 * (4096 + 32), buildMs: 41.5 };

  it('validates with and without it, and not with a field missing', () => {
    const withHost = sampleReport({ encodings: encodings({ mode: 'on', pages: 2000, host }) });
    expect(validate(withHost), JSON.stringify(validate.errors)).toBe(true);
    expect(validate(sampleReport({ encodings: encodings({ mode: 'on', pages: 2000 }) }))).toBe(true);
    const { buildMs: _, ...partial } = host;
    const broken = sampleReport({
      encodings: encodings({ mode: 'on', pages: 2000, host: partial as typeof host }),
    });
    expect(validate(broken)).toBe(false);
  });

  it('is one line of the text report: pages, contents offered, the table there and its time', () => {
    const text = formatReport(sampleReport({ encodings: encodings({ mode: 'on', pages: 2000, host }) }));
    expect(text).toContain('2000 pages sent as references to a page already there');
    expect(text).toMatch(
      /1234 pages sent as references to content the destination host held: 512 contents offered \(2\.0\d* MiB there, chosen in 41\.5 ms\)/,
    );
    const none = formatReport(sampleReport({ encodings: encodings({ mode: 'on', pages: 2000 }) }));
    expect(none).not.toContain('destination host held');
  });
});
