/**
 * The migration record, pure: what each side signs, what the destination checks before it
 * countersigns (each field it saw itself), and what `audit verify` checks of a signed record —
 * the source's signature by the record's source, the countersignature by its destination, both
 * certificates issued by the fleet CA.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { sampleRecord } from '@livemig/agent';
import {
  cancelCode,
  cancelReason,
  canonicalJson,
  countersignRecord,
  observedRefusal,
  parseRecord,
  recordBytes,
  signedRecordRefusal,
  signRecord,
  ticketIdOf,
  vmSpecHash,
  type MigrationRecord,
  type ObservedMigration,
  type RecordParty,
  type SignedRecord,
  type Signer,
} from '@livemig/shared/security';
import { useTestFleet } from '../../../helpers/signers.ts';

const f = useTestFleet('agent-a', 'agent-b');
let source: Signer;
let dest: Signer;
beforeAll(() => {
  [source, dest] = [f.signer('agent-a'), f.signer('agent-b')];
});

const party = (signer: Signer): RecordParty => ({ name: signer.name, fingerprint: signer.fingerprint });
const record = (overrides: Partial<MigrationRecord> = {}): MigrationRecord =>
  sampleRecord(party(source), party(dest), overrides);

/** A record signed by the source and countersigned by `by` (the destination unless given). */
function signed(r = record(), by: Signer = dest): SignedRecord {
  const signature = signRecord(r, source);
  return {
    record: r,
    signature,
    countersignature: { status: 'signed', signature: countersignRecord(r, signature, by) },
  };
}

/** What the destination saw of the sample migration. */
function observed(r: MigrationRecord): ObservedMigration {
  return {
    migrationId: r.migrationId,
    vm: { ...r.vm },
    mode: r.mode,
    digests: structuredClone(r.digests),
    pages: { total: r.pages.total, received: r.pages.sent, payloadBytes: r.bytes.pagePayload, exact: true },
    ticketId: r.ticketId,
    source: party(source),
    dest: party(dest),
    ended: { by: 'completion' },
  };
}

describe('record building blocks', () => {
  it('vmSpecHash: both sides get the same hash from the same spec; any field changes it', () => {
    const vm = { name: 'vm', memoryBytes: 1 << 24, pageSize: 4096, workload: 'idle', init: 'zero', seed: 1, nic: '' };
    expect(vmSpecHash(vm)).toMatch(/^[0-9a-f]{64}$/);
    expect(vmSpecHash({ ...vm })).toBe(vmSpecHash(vm));
    for (const change of [{ name: 'vm2' }, { seed: 2 }, { nic: '10.0.0.1:80' }, { workload: 'hotset' }]) {
      expect(vmSpecHash({ ...vm, ...change })).not.toBe(vmSpecHash(vm));
    }
  });

  it('ticketIdOf: a hash of the ticket, never the ticket; none for no ticket', () => {
    const ticket = 'x'.repeat(43);
    expect(ticketIdOf(ticket)).toMatch(/^[0-9a-f]{64}$/);
    expect(ticketIdOf(ticket)).not.toContain(ticket);
    expect(ticketIdOf('')).toBeNull();
  });

  it('parseRecord takes the canonical bytes of a record, and refuses anything else', () => {
    const r = record();
    expect(parseRecord(recordBytes(r))).toEqual(r);
    expect(parseRecord(Buffer.from('not json'))).toBe('the record is not JSON');
    expect(parseRecord(Buffer.from(JSON.stringify(r, null, 1)))).toBe('the record is not in canonical form');
    expect(parseRecord(Buffer.from(canonicalJson({ ...r, pages: { sent: -1 } })))).toMatch(/field "pages"/);
    expect(parseRecord(Buffer.from(canonicalJson({ ...r, schema: 'livemig.record/9' })))).toMatch(/field "schema"/);
  });
});

describe('signedRecordRefusal: a record with its signatures against the fleet CA', () => {
  it('a record signed by its source and countersigned by its destination holds', () => {
    expect(signedRecordRefusal(signed(), f.trust)).toBeUndefined();
  });

  it('a field changed after signing breaks the source signature', () => {
    const s = signed();
    s.record.pages.sent += 1;
    expect(signedRecordRefusal(s, f.trust)).toMatch(/source's signature: the signature does not verify/);
  });

  it('a countersignature by a key outside the CA is refused, even under the destination’s name', async () => {
    const outsider = await f.fleet.outsider('agent-b');
    const s = signed(record({ dest: party(outsider) }), outsider);
    expect(signedRecordRefusal(s, f.trust)).toMatch(/countersignature: the certificate .* not issued by the fleet CA/);
  });

  it('a countersignature by another agent of the fleet than the record’s destination is refused', async () => {
    const other = await f.fleet.signer('agent-c');
    expect(signedRecordRefusal(signed(record(), other), f.trust)).toMatch(
      /countersignature: it is signed by agent-c .*, not by agent-b/,
    );
  });

  it('a countersignature lifted from another record (another source signature) does not verify', () => {
    const first = signed();
    const second = signed(record({ migrationId: 'another' }));
    const spliced: SignedRecord = { ...second, countersignature: first.countersignature };
    expect(signedRecordRefusal(spliced, f.trust)).toMatch(/countersignature: the signature does not verify/);
  });

  it('refused and missing countersignatures are no break: the record says why', () => {
    const s = signed();
    expect(signedRecordRefusal({ ...s, countersignature: { status: 'missing', reason: 'link lost' } }, f.trust)).toBe(
      undefined,
    );
    expect(
      signedRecordRefusal({ ...s, countersignature: { status: 'refused', by: 'agent-b', reason: 'x' } }, f.trust),
    ).toBeUndefined();
    expect(signedRecordRefusal({ ...s, countersignature: { status: 'bogus' } as never }, f.trust)).toMatch(/malformed/);
  });

  it('an unsigned or malformed record is refused', () => {
    expect(signedRecordRefusal({ ...signed(), signature: null }, f.trust)).toMatch(/no source signature/);
    expect(signedRecordRefusal({ record: { schema: 'x' } } as never, f.trust)).toMatch(/malformed/);
  });
});

describe('observedRefusal: the destination countersigns only what it saw', () => {
  it('agrees with a record of exactly what it saw', () => {
    const r = record();
    expect(observedRefusal(r, observed(r))).toBeUndefined();
  });

  const cases: Array<[string, (r: MigrationRecord) => void, RegExp]> = [
    ['another migration', (r) => (r.migrationId = 'x'), /^migrationId:/],
    ['another VM spec', (r) => (r.vm.specHash = '0'.repeat(64)), /^vm:/],
    ['another mode', (r) => (r.mode = 'postcopy'), /^mode:/],
    ['an outcome other than completed', (r) => (r.outcome = 'failed'), /^outcome: the record says failed/],
    ['a source digest that did not arrive', (r) => (r.digests.source.ram = '1'), /^digests\.source:/],
    ['a destination digest it did not compute', (r) => (r.digests.dest.cpu = '2'), /^digests\.dest:/],
    ['more pages than arrived (pre-copy: exact)', (r) => (r.pages.sent += 1), /^pages\.sent: .* received 65536$/],
    ['other page bytes', (r) => (r.bytes.pagePayload -= 4096), /^bytes\.pagePayload:/],
    ['another ticket', (r) => (r.ticketId = null), /^ticketId:/],
    ['another destination', (r) => (r.dest = { name: 'agent-z', fingerprint: 'Z' }), /^dest:/],
  ];
  it.each(cases)('refuses %s, naming the field', (_what, change, reason) => {
    const r = record();
    const seen = observed(r);
    change(r);
    expect(observedRefusal(r, seen)).toMatch(reason);
  });

  it('a migration the source cancelled: countersigned when the record says failed or cancelled with the code its Cancel named', () => {
    expect(cancelCode(cancelReason('ERR_CANCELLED', 'migration cancelled by the operator'))).toBe('ERR_CANCELLED');
    expect(cancelCode('no code here')).toBeNull();
    const ended = { by: 'cancel', error: 'ERR_CANCELLED' } as const;
    for (const outcome of ['cancelled', 'failed'] as const) {
      const r = record({ outcome, error: 'ERR_CANCELLED' });
      expect(observedRefusal(r, { ...observed(r), ended })).toBeUndefined();
    }
    const completed = record();
    expect(observedRefusal(completed, { ...observed(completed), ended })).toMatch(
      /^outcome: the record says completed; here the source cancelled it/,
    );
    const other = record({ outcome: 'failed', error: 'ERR_NOT_CONVERGED' });
    expect(observedRefusal(other, { ...observed(other), ended })).toMatch(
      /^error: the record says ERR_NOT_CONVERGED; the source's Cancel named ERR_CANCELLED/,
    );
  });

  it('post-copy: the source may have sent more pages than arrived on the main connection, never fewer', () => {
    const r = record({ mode: 'postcopy' });
    const seen = { ...observed(r), pages: { ...observed(r).pages, received: r.pages.sent - 10, exact: false } };
    expect(observedRefusal(r, seen)).toBeUndefined();
    r.pages.sent -= 20;
    expect(observedRefusal(r, seen)).toMatch(/^pages\.sent: .*at least that many were sent/);
  });
});
