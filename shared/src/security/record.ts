/**
 * The migration record: what happened, signed by the source and countersigned by the
 * destination — so neither agent can later deny a migration the other can show. Pure: building
 * blocks, the canonical bytes, signing, and the checks each side and `livemig audit verify` run.
 *
 * Flow (the I/O is the agents'):
 *   source       when a migration ends, whatever the outcome, it builds a MigrationRecord from
 *                its figures and signs `canonicalJson(record)` (signRecord);
 *                with `signed-record` negotiated and the data channel still up (a completed
 *                migration), it sends Record {record bytes, signature, certificate};
 *   destination  checks the source's signature (its certificate must be the one the TLS
 *                handshake verified) and the record against what it saw itself
 *                (observedRefusal: migration, VM spec, mode, both sides' digests, page counts,
 *                ticket, identities); then countersigns `canonicalJson({countersigns:
 *                <source signature>, record})` — binding its signature to the source's — or
 *                refuses and says why; it keeps the result in its audit log, then answers
 *                Countersignature;
 *   source       checks the countersignature the same way and keeps the SignedRecord (report,
 *                audit log). A failed migration whose channel is gone, or a peer without the
 *                capability, leaves the countersignature `missing`, with the reason.
 *
 * Times are the source's clock (ms since the epoch, whole); `resumedAt` is `pausedAt` + the
 * downtime measured through the Handoff/Resumed exchange, never the destination's clock.
 */
import { createHash } from 'node:crypto';
import type { MigrationMode, SetupVm } from '../protocol/message-types.ts';
import type { MigrationOutcome } from '../report/types.ts';
import { canonicalBytes, canonicalJson } from './canonical-json.ts';
import { SIGNATURE_ALGORITHM, type Signer, type TrustAnchor } from './signing.ts';

/** The record's schema name; fields may be added, none renamed (like the report's). */
export const RECORD_SCHEMA = 'livemig.record/1';
/** How long each side waits for the other's part of the record exchange, ms. */
export const RECORD_TIMEOUT_MS = 5_000;

/** An agent as its certificate names it. */
export interface RecordParty {
  name: string;
  /** SHA-256 fingerprint of its certificate (colon-separated upper-case hex). */
  fingerprint: string;
}

/** Who asked for the migration: the verified control caller of `migrate`. */
export interface RecordOperator {
  name: string;
  role: string;
}

export interface MigrationRecord {
  schema: typeof RECORD_SCHEMA;
  migrationId: string;
  /** The VM's name, and the SHA-256 of its spec as Setup carried it (vmSpecHash). */
  vm: { name: string; specHash: string };
  mode: MigrationMode;
  outcome: MigrationOutcome;
  /** The error code a failed or cancelled migration ended with; null when it completed. */
  error: string | null;
  /** Section → digest, each side's as that side computed it (never one copied into the other). */
  digests: { source: Record<string, string>; dest: Record<string, string> };
  bytes: { wire: number; pagePayload: number };
  pages: { total: number; sent: number; zero: number; resent: number; faulted: number };
  /** ms since the epoch on the source's clock; null: the VM never paused / never resumed there. */
  times: { startedAt: number; pausedAt: number | null; resumedAt: number | null; endedAt: number };
  /** SHA-256 of the ticket presented (never the ticket), or null: none. */
  ticketId: string | null;
  /** The source's certificate; null for an agent without one (plaintext). */
  source: RecordParty | null;
  /** The destination's verified certificate; null when no authenticated connection was made. */
  dest: RecordParty | null;
  /** Who asked for it; null when nobody proved who they are (plaintext control). */
  operator: RecordOperator | null;
}

/** A signature over a record, with the certificate that makes it checkable against the CA alone. */
export interface RecordSignature {
  alg: typeof SIGNATURE_ALGORITHM;
  /** The signer's certificate name and fingerprint (repeated from the certificate, for people). */
  by: string;
  fingerprint: string;
  /** r‖s, base64url. */
  value: string;
  /** The signer's certificate, PEM. */
  certificate: string;
}

/** The destination's part: its signature, its refusal and why, or why there is none. */
export type Countersignature =
  | { status: 'signed'; signature: RecordSignature }
  | { status: 'refused'; by: string; reason: string }
  | { status: 'missing'; reason: string };

/** The record with its signatures, as the report and the audit logs carry it. */
export interface SignedRecord {
  record: MigrationRecord;
  /** The source's signature; null from an agent without a key (plaintext). */
  signature: RecordSignature | null;
  countersignature: Countersignature;
}

/** What the destination knows of a migration, to check a record against. */
export interface ObservedMigration {
  migrationId: string;
  vm: { name: string; specHash: string };
  mode: MigrationMode;
  /** The source's digests as they arrived, and this side's own. */
  digests: { source: Record<string, string>; dest: Record<string, string> };
  pages: {
    total: number;
    /** Pages (raw and zero) and raw page bytes received on the main connection. */
    received: number;
    payloadBytes: number;
    /** Everything went over that one connection (pre-copy): the source's counts must equal them. */
    exact: boolean;
  };
  ticketId: string | null;
  /** The source's verified certificate (TLS), and this side's own. */
  source: RecordParty;
  dest: RecordParty;
  /**
   * How it ended here: it completed, or the source ended it before Handoff with a Cancel naming
   * this error code (the record must then say failed or cancelled, with that code).
   */
  ended: { by: 'completion' } | { by: 'cancel'; error: string | null };
}

/** A Cancel's reason names the error that ended the migration first: `ERR_CODE: message`. */
export function cancelReason(code: string, message: string): string {
  return `${code}: ${message}`;
}

/** The error code a Cancel's reason names, or null when it names none. */
export function cancelCode(reason: string): string | null {
  return /^(ERR_[A-Z0-9_]+): /.exec(reason)?.[1] ?? null;
}

const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** SHA-256 (hex) of the VM spec's canonical JSON: both sides compute it from the same Setup. */
export function vmSpecHash(vm: SetupVm): string {
  const { name, memoryBytes, pageSize, workload, init, seed, nic } = vm;
  return sha256(canonicalJson({ name, memoryBytes, pageSize, workload, init, seed, nic }));
}

/** The record's ticket id: SHA-256 (hex) of the ticket's text; null for no ticket. */
export function ticketIdOf(ticket: string): string | null {
  return ticket === '' ? null : sha256(ticket);
}

/** What the source signs: the record's canonical JSON. */
export function recordBytes(record: MigrationRecord): Buffer {
  return canonicalBytes(record);
}

/** What the destination signs: the record together with the source's signature of it. */
export function countersignedBytes(record: MigrationRecord, source: RecordSignature): Buffer {
  return canonicalBytes({ countersigns: source.value, record });
}

function signatureOf(signer: Signer, data: Uint8Array): RecordSignature {
  return {
    alg: SIGNATURE_ALGORITHM,
    by: signer.name,
    fingerprint: signer.fingerprint,
    value: signer.sign(data),
    certificate: signer.certificate,
  };
}

/** The source's signature of `record`. */
export function signRecord(record: MigrationRecord, signer: Signer): RecordSignature {
  return signatureOf(signer, recordBytes(record));
}

/** The destination's countersignature of `record` as signed by `source`. */
export function countersignRecord(record: MigrationRecord, source: RecordSignature, signer: Signer): RecordSignature {
  return signatureOf(signer, countersignedBytes(record, source));
}

/**
 * Why `signature` is not `party`'s valid signature of `data` (certificate issued by the CA to
 * that agent, valid at `at`, and the signature checks), or undefined when it is.
 */
export function signatureRefusal(
  trust: TrustAnchor,
  signature: RecordSignature,
  party: RecordParty,
  data: Uint8Array,
  at: number,
): string | undefined {
  if (signature.alg !== SIGNATURE_ALGORITHM)
    return `the algorithm is ${String(signature.alg)}, not ${SIGNATURE_ALGORITHM}`;
  if (signature.fingerprint !== party.fingerprint || signature.by !== party.name) {
    return `it is signed by ${signature.by} (${signature.fingerprint}), not by ${party.name} (${party.fingerprint})`;
  }
  const refused = trust.refuses(signature.certificate, { fingerprint: party.fingerprint, name: party.name, at });
  if (refused) return refused;
  if (!trust.verifies(signature.certificate, data, signature.value)) return 'the signature does not verify';
  return undefined;
}

/**
 * Why a record with its signatures does not hold up against the fleet CA — the source's
 * signature by the record's source, a `signed` countersignature by the record's destination —
 * or undefined when it does. A `refused` or `missing` countersignature is no break: the record
 * says so, and why.
 */
export function signedRecordRefusal(signed: SignedRecord, trust: TrustAnchor): string | undefined {
  const shape = recordShapeError(signed?.record);
  if (shape) return `the record is malformed: ${shape}`;
  const { record, signature, countersignature } = signed;
  if (!signature) return 'the record carries no source signature';
  if (!record.source) return 'the record names no source';
  const at = record.times.endedAt;
  const bad = signatureRefusal(trust, signature, record.source, recordBytes(record), at);
  if (bad) return `the source's signature: ${bad}`;
  switch (countersignature?.status) {
    case 'signed': {
      if (!record.dest) return 'the record is countersigned but names no destination';
      const data = countersignedBytes(record, signature);
      const wrong = signatureRefusal(trust, countersignature.signature, record.dest, data, at);
      return wrong ? `the countersignature: ${wrong}` : undefined;
    }
    case 'refused':
    case 'missing':
      return typeof countersignature.reason === 'string' ? undefined : 'the countersignature says no reason';
    default:
      return 'the countersignature is malformed';
  }
}

/**
 * Destination side: why this side refuses to countersign `record`, or undefined when it agrees
 * with everything it saw itself. The reason names the first field that differs.
 */
export function observedRefusal(record: MigrationRecord, seen: ObservedMigration): string | undefined {
  const differs = (field: string, claimed: unknown, own: unknown): string | undefined =>
    canonicalJson(claimed) === canonicalJson(own)
      ? undefined
      : `${field}: the record says ${canonicalJson(claimed)}, this destination saw ${canonicalJson(own)}`;
  const pages = (field: string, claimed: number, own: number): string | undefined => {
    if (seen.pages.exact ? claimed === own : claimed >= own) return undefined;
    return `${field}: the record says ${claimed}, this destination received ${own}${seen.pages.exact ? '' : ' (at least that many were sent)'}`;
  };
  return (
    differs('migrationId', record.migrationId, seen.migrationId) ??
    differs('vm', record.vm, seen.vm) ??
    differs('mode', record.mode, seen.mode) ??
    outcomeRefusal(record, seen.ended) ??
    differs('digests.source', record.digests.source, seen.digests.source) ??
    differs('digests.dest', record.digests.dest, seen.digests.dest) ??
    differs('pages.total', record.pages.total, seen.pages.total) ??
    pages('pages.sent', record.pages.sent, seen.pages.received) ??
    pages('bytes.pagePayload', record.bytes.pagePayload, seen.pages.payloadBytes) ??
    differs('ticketId', record.ticketId, seen.ticketId) ??
    differs('source', record.source, seen.source) ??
    differs('dest', record.dest, seen.dest)
  );
}

function outcomeRefusal(record: MigrationRecord, ended: ObservedMigration['ended']): string | undefined {
  if (ended.by === 'completion') {
    return record.outcome === 'completed' ? undefined : `outcome: the record says ${record.outcome}; here it completed`;
  }
  if (record.outcome === 'completed') return 'outcome: the record says completed; here the source cancelled it';
  if (record.error === ended.error) return undefined;
  return `error: the record says ${record.error ?? 'none'}; the source's Cancel named ${ended.error ?? 'none'}`;
}

/**
 * A record from the wire: its canonical JSON bytes. Returns the record, or why it is not one
 * (not JSON, not the schema, not in canonical form — the bytes signed must be the record's).
 */
export function parseRecord(bytes: Uint8Array): MigrationRecord | string {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return 'the record is not JSON';
  }
  const shape = recordShapeError(value);
  if (shape) return `the record is malformed: ${shape}`;
  if (!recordBytes(value as MigrationRecord).equals(Buffer.from(bytes))) return 'the record is not in canonical form';
  return value as MigrationRecord;
}

type Check = (value: unknown) => boolean;
const isString: Check = (v) => typeof v === 'string';
const isCount: Check = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isTime: Check = (v) => typeof v === 'number' && Number.isFinite(v);
const orNull =
  (check: Check): Check =>
  (v) =>
    v === null || check(v);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isDigests: Check = (v) => isObject(v) && Object.values(v).every(isString);
const fieldsOf =
  (fields: Record<string, Check>): Check =>
  (v) =>
    isObject(v) && Object.entries(fields).every(([key, check]) => check(v[key]));
const isParty = fieldsOf({ name: isString, fingerprint: isString });

const RECORD_FIELDS: Record<keyof MigrationRecord, Check> = {
  schema: (v) => v === RECORD_SCHEMA,
  migrationId: isString,
  vm: fieldsOf({ name: isString, specHash: isString }),
  mode: (v) => v === 'precopy' || v === 'postcopy' || v === 'hybrid',
  outcome: (v) => v === 'completed' || v === 'failed' || v === 'cancelled',
  error: orNull(isString),
  digests: fieldsOf({ source: isDigests, dest: isDigests }),
  bytes: fieldsOf({ wire: isCount, pagePayload: isCount }),
  pages: fieldsOf({ total: isCount, sent: isCount, zero: isCount, resent: isCount, faulted: isCount }),
  times: fieldsOf({ startedAt: isTime, pausedAt: orNull(isTime), resumedAt: orNull(isTime), endedAt: isTime }),
  ticketId: orNull(isString),
  source: orNull(isParty),
  dest: orNull(isParty),
  operator: orNull(fieldsOf({ name: isString, role: isString })),
};

/** Why `value` is not a MigrationRecord (the first field that is wrong), or undefined. */
export function recordShapeError(value: unknown): string | undefined {
  if (!isObject(value)) return 'not an object';
  for (const [field, check] of Object.entries(RECORD_FIELDS)) {
    if (!check(value[field])) return `field "${field}" is missing or wrong`;
  }
  return undefined;
}
