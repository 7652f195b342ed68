/**
 * The audit log's format and its checks, pure (agent/src/audit-log.ts does the file I/O).
 *
 * An audit log is JSON lines, append-only. Each line is one entry in canonical JSON
 * (canonical-json.ts), so the line *is* the bytes hashed and signed:
 *
 *   {"agent":"host-a","at":"2026-…Z","kind":"command","prev":"<sha256 of the previous line>",
 *    "seq":7,"v":1, …what happened…, "sig":{"fingerprint":"AB:…","value":"<ES256, base64url>"}}
 *
 * - `seq` counts entries from 1; `prev` is the SHA-256 (hex) of the previous line's bytes
 *   (64 zeros for the first): deleting, reordering or editing any line breaks the chain at the
 *   next one.
 * - Entries are signed with the agent's key when it has one (`sig` over the entry without
 *   `sig`). Why sign every entry and not only the records: a hash chain alone can be rebuilt
 *   by whoever can write the file — edit a line, recompute every `prev` after it, and the chain
 *   is whole again. A signature per entry makes a forged or edited line detectable by anyone
 *   holding the fleet CA, and costs ~0.05 ms per entry against an fsync's milliseconds. The
 *   chain still matters: it catches deletion and reordering, which per-entry signatures do not.
 *   What neither catches is cutting the tail off; a countersigned record at the peer, or the
 *   last hash kept elsewhere (`audit show` prints it), anchors the end.
 * - An `open` entry starts every run of the agent and carries its certificate (PEM): the
 *   entries after it are checked against that certificate, which must be issued by the CA.
 * - Kinds: `open`; `command` — a control command that changes state: who (the verified
 *   caller), what (command, arguments with any ticket replaced by its id), when, and the
 *   result or error; `record` — a migration record (record.ts), as the source or destination.
 */
import { createHash } from 'node:crypto';
import { MigrationError } from '../errors.ts';
import { canonicalBytes, canonicalJson } from './canonical-json.ts';
import { recordShapeError, signedRecordRefusal, ticketIdOf, type SignedRecord } from './record.ts';
import type { Signer, TrustAnchor } from './signing.ts';

/** The entry format version. */
export const AUDIT_VERSION = 1;
/** `prev` of the first entry. */
export const AUDIT_GENESIS = '0'.repeat(64);

/** A verified control caller (null on a plaintext agent: nobody proved who they are). */
export interface AuditCaller {
  name: string;
  role: string;
}

/** What an entry says happened. */
export type AuditBody =
  /** The agent started writing (again): its certificate, or null for an agent without one. */
  | { kind: 'open'; certificate: string | null; pid: number }
  /** A control command that changes state, and how it ended. */
  | {
      kind: 'command';
      caller: AuditCaller | null;
      command: string;
      args: unknown;
      result: { ok: unknown } | { error: { code: string; message: string } };
    }
  /** A migration record, as this agent's side of it (source or destination) keeps it. */
  | { kind: 'record'; role: 'source' | 'dest'; record: SignedRecord };

/** The agent's signature of an entry. */
export interface AuditSeal {
  fingerprint: string;
  value: string;
}

/** One line of the log. */
export type AuditEntry = { v: number; seq: number; at: string; agent: string; prev: string } & AuditBody & {
    sig?: AuditSeal;
  };

/** Where the log stands: the last entry's seq (0: empty) and the hash of its line. */
export interface AuditChain {
  seq: number;
  prev: string;
}

/** SHA-256 (hex) of a line's bytes (without its newline): the next entry's `prev`. */
export function lineHash(line: string): string {
  return createHash('sha256').update(line, 'utf8').digest('hex');
}

/**
 * The next entry after `chain`: its line (canonical JSON, no newline), signed by `signer` when
 * given, and the chain after it.
 */
export function sealEntry(
  chain: AuditChain,
  fields: { agent: string; at: Date; body: AuditBody },
  signer?: Signer,
): { line: string; entry: AuditEntry; chain: AuditChain } {
  const entry = {
    v: AUDIT_VERSION,
    seq: chain.seq + 1,
    at: fields.at.toISOString(),
    agent: fields.agent,
    prev: chain.prev,
    ...fields.body,
  } as AuditEntry;
  if (signer) entry.sig = { fingerprint: signer.fingerprint, value: signer.sign(canonicalBytes(entry)) };
  const line = canonicalJson(entry);
  return { line, entry, chain: { seq: entry.seq, prev: lineHash(line) } };
}

/** The chain after a log whose last line is `last` (undefined: an empty log). Throws ERR_AUDIT for a line that is no entry. */
export function chainAfter(last: string | undefined): AuditChain {
  if (last === undefined) return { seq: 0, prev: AUDIT_GENESIS };
  const entry = parseLine(last);
  if (typeof entry === 'string' || !Number.isSafeInteger(entry.seq)) {
    throw new MigrationError(
      'ERR_AUDIT',
      `the audit log's last line is not an entry (${String(entry)}): check it with \`livemig audit verify\``,
    );
  }
  return { seq: entry.seq, prev: lineHash(last) };
}

/** `value` with every `ticket` field replaced by its `ticketId`: a log never holds a secret. */
export function redactTickets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactTickets);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (key === 'ticket' && typeof item === 'string') out.ticketId = ticketIdOf(item);
    else out[key] = redactTickets(item);
  }
  return out;
}

/** A line as an entry, or why it is not one. */
function parseLine(line: string): AuditEntry | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'not valid JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const entry = value as AuditEntry;
  if (entry.v !== AUDIT_VERSION) return `unknown entry version ${String(entry.v)}`;
  if (!Number.isSafeInteger(entry.seq) || typeof entry.prev !== 'string' || typeof entry.agent !== 'string') {
    return 'not an audit entry (seq, prev, agent)';
  }
  if (typeof entry.at !== 'string' || Number.isNaN(Date.parse(entry.at))) return 'no valid time (at)';
  if (!['open', 'command', 'record'].includes(entry.kind)) return `unknown kind ${String(entry.kind)}`;
  return entry;
}

/** The outcome of `verifyAuditLog`. */
export type AuditVerdict =
  | { ok: true; entries: number; signed: boolean; lastHash: string }
  /** `line` is 1-based; `entries` the good lines before it. */
  | { ok: false; entries: number; line: number; reason: string };

/** The lines of a log's text; a last line without its newline is flagged, not dropped. */
function splitLines(text: string): { lines: string[]; torn: boolean } {
  const lines = text.split('\n');
  const last = lines.pop();
  return last === '' || last === undefined ? { lines, torn: false } : { lines: [...lines, last], torn: true };
}

/**
 * Check a log: every line an entry in canonical form, `seq` counting from 1, `prev` the hash
 * of the line before; with `trust`, also every entry's signature (by the certificate of the
 * `open` entry before it, which the CA must have issued) and every record's signature and
 * countersignature. Stops at the first broken line and says why.
 */
export function verifyAuditLog(text: string, trust?: TrustAnchor): AuditVerdict {
  const { lines, torn } = splitLines(text);
  let chain: AuditChain = { seq: 0, prev: AUDIT_GENESIS };
  /** The certificate of the current run (from its `open` entry) and the name it is for. */
  let signer: { fingerprint: string; certificate: string; agent: string } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const broken = (reason: string): AuditVerdict => ({ ok: false, entries: i, line: i + 1, reason });
    if (torn && i === lines.length - 1) return broken('the last line is incomplete (no newline): a torn write');
    const entry = parseLine(line);
    if (typeof entry === 'string') return broken(`${entry} (the line was edited or damaged)`);
    if (canonicalJson(entry) !== line) return broken('not in canonical form (the line was edited)');
    const expected = chain.seq + 1;
    if (entry.seq > expected) {
      return broken(`seq ${entry.seq} where ${expected} was expected: entries before it were deleted or moved`);
    }
    if (entry.seq < expected) {
      return broken(`seq ${entry.seq} where ${expected} was expected: entries are out of order or repeated`);
    }
    if (entry.prev !== chain.prev) {
      return broken(
        i === 0
          ? 'prev is not the start of a log: the lines before it were deleted'
          : `prev is not the hash of line ${i}: line ${i} was edited, or lines were deleted or moved`,
      );
    }
    if (trust) {
      const { sig, ...unsigned } = entry;
      if (!sig || typeof sig.value !== 'string')
        return broken('the entry is not signed (an agent without --pki wrote it)');
      if (entry.kind === 'open') {
        if (typeof entry.certificate !== 'string') return broken('the open entry carries no certificate');
        const at = Date.parse(entry.at);
        const refused = trust.refuses(entry.certificate, { fingerprint: sig.fingerprint, name: entry.agent, at });
        if (refused) return broken(`the agent's certificate: ${refused}`);
        signer = { fingerprint: sig.fingerprint, certificate: entry.certificate, agent: entry.agent };
      }
      if (!signer) return broken('no open entry before it names the certificate that signed it');
      if (sig.fingerprint !== signer.fingerprint || entry.agent !== signer.agent) {
        return broken(`signed by ${sig.fingerprint} as "${entry.agent}", not by this run's certificate`);
      }
      if (!trust.verifies(signer.certificate, canonicalBytes(unsigned), sig.value)) {
        return broken('the entry signature does not verify (the entry was edited, or its signature)');
      }
      if (entry.kind === 'record') {
        const wrong = recordEntryRefusal(entry, signer.fingerprint, trust);
        if (wrong) return broken(`record ${String(entry.record?.record?.migrationId)}: ${wrong}`);
      }
    }
    chain = { seq: entry.seq, prev: lineHash(line) };
  }
  return { ok: true, entries: lines.length, signed: trust !== undefined, lastHash: chain.prev };
}

/**
 * Why a record entry does not hold up, or undefined. A destination keeps the records it refused
 * too — a record it would not sign may be anything a source sent, a bad signature included — so
 * such an entry needs only the shape of a record and the reason; every other record must be
 * signed as signedRecordRefusal checks, with this agent as its side of it.
 */
function recordEntryRefusal(
  entry: Extract<AuditEntry, { kind: 'record' }>,
  fingerprint: string,
  trust: TrustAnchor,
): string | undefined {
  const { role, record: signed } = entry;
  if (role === 'dest' && signed?.countersignature?.status === 'refused') {
    const shape = recordShapeError(signed.record);
    return shape ? `the record is malformed: ${shape}` : undefined;
  }
  const refused = signedRecordRefusal(signed, trust);
  if (refused) return refused;
  const own = role === 'source' ? signed.record.source : signed.record.dest;
  return own?.fingerprint === fingerprint
    ? undefined
    : `a ${role} record whose ${role} is not this agent (${fingerprint})`;
}

/** Every line of a log as an entry (or, for a line that is none, why): for `audit show`. */
export function parseAuditLog(
  text: string,
): Array<{ line: number; entry: AuditEntry } | { line: number; error: string }> {
  return splitLines(text).lines.map((line, i) => {
    const entry = parseLine(line);
    return typeof entry === 'string' ? { line: i + 1, error: entry } : { line: i + 1, entry };
  });
}
