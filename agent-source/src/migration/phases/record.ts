/**
 * The record, last: when the migration ends the source signs its record of it. A completed
 * migration still has its data channel, so with `signed-record` negotiated the record goes to
 * the destination (Record), which checks it against what it saw and answers with its
 * countersignature or its refusal (Countersignature); we check the countersignature against the
 * fleet CA and the destination's TLS identity. Nothing here fails the migration: the VM already
 * runs on the destination, and a record without a countersignature says why it has none.
 *
 * A migration the source ends before Handoff (cancelled, or failed on this side) while its data
 * channel still works tells the destination with a Cancel naming the error, then has the record
 * of that outcome countersigned the same way (rollback.ts, after the VM runs here again). When
 * the channel is gone, or the destination ended it, the record is the source's alone, and says so.
 */
import { toMigrationError, type ErrorCode, type MigrationError } from '@livemig/shared';
import { msg, MsgType, type PeerChannel } from '@livemig/shared/channel';
import type { CountersignatureMsg } from '@livemig/shared/protocol';
import {
  cancelReason,
  countersignedBytes,
  RECORD_TIMEOUT_MS,
  recordBytes,
  signatureRefusal,
  signRecord,
  SIGNATURE_ALGORITHM,
  type Countersignature,
  type MigrationRecord,
  type RecordSignature,
  type SignedRecord,
} from '@livemig/shared/security';
import { buildRecord } from '../build-record.ts';
import type { MigrationContext } from '../context.ts';

const NO_KEY = 'this agent has no key (no --pki): the record is not signed, and nothing was sent to countersign';

/** A completed migration: sign the record, have the destination countersign it (ctx.record). */
export async function recordPhase(ctx: MigrationContext): Promise<void> {
  const record = buildRecord(ctx, 'completed', undefined);
  const signer = ctx.signer;
  if (!signer) {
    ctx.record = { record, signature: null, countersignature: { status: 'missing', reason: NO_KEY } };
    return;
  }
  const signature = signRecord(record, signer);
  ctx.record = { record, signature, countersignature: await countersignature(ctx, record, signature) };
  logRecord(ctx, ctx.record);
}

/**
 * Errors after which the destination is not expected to answer (it is frozen, gone, or the link
 * is): no record exchange, whose wait would only delay the report.
 */
const UNRESPONSIVE_PEER: ReadonlySet<ErrorCode> = new Set([
  'ERR_SWITCHOVER_TIMEOUT',
  'ERR_TIMEOUT',
  'ERR_IDLE_TIMEOUT',
]);

/**
 * The source ends the migration before Handoff: when the main channel still works, tell the
 * destination with a Cancel naming `error` (so it discards its copy), then have the record of this
 * outcome countersigned. Returns undefined when there is no exchange to have (no key, no channel,
 * a broken or unresponsive one): the caller closes the channel with the error as before.
 */
export async function cancelWithRecord(
  ctx: MigrationContext,
  outcome: 'failed' | 'cancelled',
  error: MigrationError,
): Promise<SignedRecord | undefined> {
  const main = openMain(ctx);
  if (!ctx.signer || !main || main.failure || UNRESPONSIVE_PEER.has(error.code)) return undefined;
  if (!main.capabilities.has('signed-record')) return undefined;
  try {
    main.send(msg.cancel(cancelReason(error.code, error.message)));
  } catch {
    return undefined;
  }
  const record = buildRecord(ctx, outcome, error);
  const signature = signRecord(record, ctx.signer);
  // Not ctx.signal: a cancelled migration's signal is aborted already; the record has its own deadline.
  const signed = { record, signature, countersignature: await countersignature(ctx, record, signature, false) };
  logRecord(ctx, signed);
  return signed;
}

function openMain(ctx: MigrationContext): PeerChannel | undefined {
  try {
    return ctx.channels.main;
  } catch {
    return undefined;
  }
}

function logRecord(ctx: MigrationContext, signed: SignedRecord): void {
  const c = signed.countersignature;
  ctx.logger.info(
    { event: 'record.done', countersignature: c.status, ...(c.status === 'signed' ? {} : { reason: c.reason }) },
    c.status === 'signed'
      ? 'migration record countersigned by the destination'
      : `migration record not countersigned: ${c.reason}`,
  );
}

/** A migration that did not complete: the record signed by this side alone (its channel is closed). */
export function sourceOnlyRecord(
  ctx: MigrationContext,
  outcome: MigrationRecord['outcome'],
  error: MigrationError | undefined,
): SignedRecord {
  const record = buildRecord(ctx, outcome, error);
  if (!ctx.signer) return { record, signature: null, countersignature: { status: 'missing', reason: NO_KEY } };
  const why = error ? `${outcome} with ${error.code}` : outcome;
  return {
    record,
    signature: signRecord(record, ctx.signer),
    countersignature: {
      status: 'missing',
      reason: `the migration ${why} before the record exchange: the data channel is closed, the destination never saw this record`,
    },
  };
}

async function countersignature(
  ctx: MigrationContext,
  record: MigrationRecord,
  signature: RecordSignature,
  /** Also stop when the migration is aborted (not for a record of its cancellation). */
  followAbort = true,
): Promise<Countersignature> {
  const main = ctx.channels.main;
  if (!main.capabilities.has('signed-record')) {
    return {
      status: 'missing',
      reason: 'the destination did not negotiate signed-record (an older build, or an agent without a key)',
    };
  }
  const timeout = AbortSignal.timeout(RECORD_TIMEOUT_MS);
  let answer: CountersignatureMsg;
  try {
    main.send(msg.record(recordBytes(record), signature));
    answer = await main.expect(
      MsgType.Countersignature,
      followAbort ? AbortSignal.any([ctx.signal, timeout]) : timeout,
    );
  } catch (error) {
    const why = timeout.aborted ? `none came within ${RECORD_TIMEOUT_MS} ms` : toMigrationError(error).message;
    return { status: 'missing', reason: `no countersignature from the destination: ${why}` };
  }
  const dest = ctx.destParty;
  if (answer.refused !== '') return { status: 'refused', by: dest?.name ?? '?', reason: answer.refused };
  if (!dest)
    return { status: 'missing', reason: 'the destination is not authenticated: a countersignature proves nothing' };
  const counter: RecordSignature = {
    alg: SIGNATURE_ALGORITHM,
    by: dest.name,
    fingerprint: dest.fingerprint,
    value: answer.signature,
    certificate: answer.certificate,
  };
  const data = countersignedBytes(record, signature);
  const bad = signatureRefusal(ctx.signer!.trust, counter, dest, data, record.times.endedAt);
  if (bad) return { status: 'missing', reason: `the destination's countersignature is not valid: ${bad}` };
  return { status: 'signed', signature: counter };
}
