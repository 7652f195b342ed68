/**
 * What non-repudiation costs, as functions a benchmark (or a person) can time without running a
 * migration: the CPU the record exchange adds to a completed migration, and one audit log
 * append with its fsync. The record is a representative one (three sections, real certificates);
 * the append writes to a real file on the file system the caller chooses — fsync cost is the
 * disk's, so measure where the agents keep their state.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  countersignedBytes,
  countersignRecord,
  observedRefusal,
  RECORD_SCHEMA,
  recordBytes,
  signatureRefusal,
  signRecord,
  type MigrationRecord,
  type RecordParty,
  type Signer,
} from '@livemig/shared/security';
import { AuditLog } from './audit-log.ts';

/** A record of a completed pre-copy migration from `source` to `dest`, as an agent would build it. */
export function sampleRecord(
  source: RecordParty,
  dest: RecordParty,
  overrides: Partial<MigrationRecord> = {},
): MigrationRecord {
  const digests = { ram: 'a'.repeat(64), cpu: 'b'.repeat(64), devices: 'c'.repeat(64) };
  // Now: a record is checked against its signers' certificates' validity at its end time.
  const endedAt = Date.now();
  return {
    schema: RECORD_SCHEMA,
    migrationId: '6f0f3f8e-1c1e-4c59-9a55-0f3c8f8f2a11',
    vm: { name: 'vm1', specHash: 'd'.repeat(64) },
    mode: 'precopy',
    outcome: 'completed',
    error: null,
    digests: { source: { ...digests }, dest: { ...digests } },
    bytes: { wire: 268_700_000, pagePayload: 268_435_456 },
    pages: { total: 65_536, sent: 65_536, zero: 0, resent: 0, faulted: 0 },
    times: { startedAt: endedAt - 930, pausedAt: endedAt - 30, resumedAt: endedAt - 18, endedAt },
    ticketId: 'e'.repeat(64),
    source,
    dest,
    operator: { name: 'alice', role: 'operator' },
    ...overrides,
  };
}

const partyOf = (signer: Signer): RecordParty => ({ name: signer.name, fingerprint: signer.fingerprint });

/**
 * One record exchange's CPU, ms: the source signs; the destination checks the signature (its
 * certificate against the CA) and the record against what it saw, and countersigns; the source
 * checks the countersignature. The message round trip and the audit appends are not included.
 */
export function recordExchangeMs(source: Signer, dest: Signer): number {
  const started = performance.now();
  const record = sampleRecord(partyOf(source), partyOf(dest));
  const signature = signRecord(record, source);
  const refused =
    signatureRefusal(dest.trust, signature, partyOf(source), recordBytes(record), record.times.endedAt) ??
    observedRefusal(record, {
      migrationId: record.migrationId,
      vm: record.vm,
      mode: record.mode,
      digests: record.digests,
      pages: {
        total: record.pages.total,
        received: record.pages.sent,
        payloadBytes: record.bytes.pagePayload,
        exact: true,
      },
      ticketId: record.ticketId,
      source: partyOf(source),
      dest: partyOf(dest),
      ended: { by: 'completion' },
    });
  if (refused) throw new Error(`the sample record was refused: ${refused}`);
  const counter = countersignRecord(record, signature, dest);
  const data = countersignedBytes(record, signature);
  const bad = signatureRefusal(source.trust, counter, partyOf(dest), data, record.times.endedAt);
  if (bad) throw new Error(`the sample countersignature was refused: ${bad}`);
  return performance.now() - started;
}

/**
 * Microseconds per audit log append, fsync included, for `entries` record entries (as a
 * completed migration adds on each side) in a new log under `dir`, removed afterwards.
 */
export async function auditAppendUs(options: { dir: string; signer?: Signer; entries: number }): Promise<number[]> {
  const scratch = await mkdtemp(join(options.dir, 'livemig-audit-cost-'));
  const log = await AuditLog.open({
    file: join(scratch, 'audit.log'),
    agent: options.signer?.name ?? 'bench',
    ...(options.signer ? { signer: options.signer } : {}),
  });
  try {
    const party = { name: 'a', fingerprint: 'A' };
    const record = sampleRecord(party, party);
    const times: number[] = [];
    for (let i = 0; i < options.entries; i++) {
      const started = performance.now();
      await log.append({
        kind: 'record',
        role: 'source',
        record: { record, signature: null, countersignature: { status: 'missing', reason: 'benchmark' } },
      });
      times.push((performance.now() - started) * 1000);
    }
    return times;
  } finally {
    await log.close();
    await rm(scratch, { recursive: true, force: true });
  }
}
