/**
 * The report's `storage` field (issue 15): an extra field, present only for a VM with a disk,
 * checked whole by the JSON schema when there, and a block of the human report — mode and
 * sizes, disk bytes on the wire, blocks by how they travelled, write latency before → during,
 * the note — within 80 columns. A report without it prints no such block.
 */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { STORAGE_MODES } from '@livemig/shared/protocol';
import { formatReport, REPORT_JSON_SCHEMA, type StorageReport } from '@livemig/shared/report';
import { sampleReport } from '../../../helpers/report.ts';

const MiB = 1024 * 1024;

const MIRROR: StorageReport = {
  mode: 'mirror',
  sizeBytes: 4096 * MiB,
  allocatedBytes: 512 * MiB,
  wireBytes: 530 * MiB,
  blocksCopied: 131_072,
  blocksResent: 1_234,
  blocksMirrored: 56_789,
  blocksFetched: 0,
  blocksPushed: 0,
  rounds: 3,
  writeLatencyMs: { before: { count: 2000, p50: 0.12, p99: 0.9 }, during: { count: 8000, p50: 0.31, p99: 2.4 } },
  note: 'mirror: every guest write synchronous from round 1 on, after the bulk copy of 512 MiB allocated blocks',
};

const withStorage = (storage: StorageReport): ReturnType<typeof sampleReport> =>
  sampleReport({ storage, verify: { ...sampleReport().verify, sections: disks('ab12', 'ab12') } });

function disks(source: string, dest: string): NonNullable<ReturnType<typeof sampleReport>['verify']['sections']> {
  return {
    ram: { source: 'a', dest: 'a', match: true },
    disk: { source, dest, match: source === dest },
  };
}

/** The storage block's lines: from `storage` to the line before the proof. */
function storageBlock(text: string): string[] {
  const lines = text.split('\n');
  const start = lines.findIndex((line) => /^ {2}storage /.test(line));
  const end = lines.findIndex((line, i) => i > start && /^ {2}(memory digest|verified) /.test(line));
  return start < 0 ? [] : lines.slice(start, end);
}

describe('report.storage', () => {
  const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);

  it('the schema takes a report without storage, and one with it in every mode', () => {
    expect(validate(sampleReport()), JSON.stringify(validate.errors)).toBe(true);
    for (const mode of STORAGE_MODES) {
      const report = withStorage({ ...MIRROR, mode });
      expect(validate(report), `${mode}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    const noNote: Partial<StorageReport> = { ...MIRROR };
    delete noNote.note;
    expect(validate(sampleReport({ storage: noNote as StorageReport })), JSON.stringify(validate.errors)).toBe(true);
    const unmeasured = { ...MIRROR, writeLatencyMs: { before: null, during: null } };
    expect(validate(sampleReport({ storage: unmeasured })), JSON.stringify(validate.errors)).toBe(true);
  });

  it('the schema refuses a storage field that is incomplete or wrong', () => {
    const bad = (storage: unknown): boolean => validate(sampleReport({ storage: storage as StorageReport }));
    expect(bad({ ...MIRROR, mode: 'teleport' })).toBe(false);
    expect(bad({ ...MIRROR, wireBytes: '530 MiB' })).toBe(false);
    expect(bad({ ...MIRROR, writeLatencyMs: { before: null } })).toBe(false);
    expect(bad({ ...MIRROR, writeLatencyMs: { before: { p50: 1, p99: 2 }, during: null } })).toBe(false);
    expect(bad(null)).toBe(false);
    for (const key of Object.keys(MIRROR).filter((k) => k !== 'note')) {
      const without: Record<string, unknown> = { ...MIRROR };
      delete without[key];
      expect(bad(without), `without ${key}`).toBe(false);
    }
  });

  it('the human report prints the storage block, each line within 80 columns', () => {
    const text = formatReport(withStorage(MIRROR));
    const block = storageBlock(text);
    expect(block.join('\n')).toMatchInlineSnapshot(`
      "  storage            mirror: a 4.00 GiB disk, 512.0 MiB allocated
        disk on the wire   530.0 MiB, 3 pre-copy rounds
        disk blocks        131072 copied, 1234 re-sent, 56789 mirrored,
                           0 fetched on demand, 0 pushed
        write latency      p50 120 µs → 310 µs, p99 900 µs → 2.40 ms (before → during)
        disk note          mirror: every guest write synchronous from round 1 on,
                           after the bulk copy of 512 MiB allocated blocks"
    `);
    for (const line of block) expect(line.length, line).toBeLessThanOrEqual(80);
    // The disk's digests are the proof's, under their own label.
    expect(text).toMatch(/disk digest\s+match \(ab12\)/);
    expect(
      formatReport(
        sampleReport({ ...withStorage(MIRROR), verify: { ...sampleReport().verify, sections: disks('ab12', 'cd34') } }),
      ),
    ).toMatch(/disk digest\s+MISMATCH source ab12 ≠ dest cd34/);
  });

  it('shared and post-copy: nothing or blocks on demand; latency not measured or one side missing', () => {
    const shared = storageBlock(
      formatReport(
        withStorage({
          ...MIRROR,
          mode: 'shared',
          wireBytes: 0,
          blocksCopied: 0,
          blocksResent: 0,
          blocksMirrored: 0,
          rounds: 0,
          writeLatencyMs: { before: null, during: null },
          note: undefined as unknown as string,
        }),
      ),
    );
    expect(shared[0]).toMatch(/^ {2}storage\s+shared: a 4\.00 GiB disk, 512\.0 MiB allocated$/);
    expect(shared).toContain('  disk on the wire   0 B, 0 pre-copy rounds');
    expect(shared).toContain('  write latency      not measured');
    expect(shared.some((line) => line.includes('disk note'))).toBe(false);

    const postcopy = storageBlock(
      formatReport(
        withStorage({
          ...MIRROR,
          mode: 'postcopy',
          rounds: 1,
          blocksFetched: 17,
          blocksPushed: 131_055,
          writeLatencyMs: { before: null, during: { count: 3, p50: 1.5, p99: 12 } },
        }),
      ),
    );
    expect(postcopy.join('\n')).toMatch(/17 fetched on demand, 131055 pushed/);
    expect(postcopy).toContain('  disk on the wire   530.0 MiB, 1 pre-copy round');
    expect(postcopy.join('\n')).toMatch(/p50 n\/a → 1\.50 ms, p99 n\/a → 12\.0 ms/);
  });

  it('a report without storage prints no storage block', () => {
    const text = formatReport(sampleReport());
    expect(storageBlock(text)).toEqual([]);
    expect(text).not.toMatch(/storage|disk/);
  });
});
