/**
 * The audit log's format, pure: entries sealed one after the other (canonical JSON lines, seq,
 * the previous line's hash, the agent's signature) verify; deleting, reordering or editing any
 * line — a byte, a field, a signature — is caught at the line it broke, with the reason; so is a
 * log or a record signed by a key outside the fleet CA.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { sampleRecord } from '@livemig/agent';
import {
  AUDIT_GENESIS,
  canonicalJson,
  chainAfter,
  countersignRecord,
  lineHash,
  parseAuditLog,
  redactTickets,
  sealEntry,
  signRecord,
  ticketIdOf,
  verifyAuditLog,
  type AuditBody,
  type AuditChain,
  type SignedRecord,
  type Signer,
} from '@livemig/shared/security';
import { useTestFleet } from '../../../helpers/signers.ts';

const f = useTestFleet('agent-a', 'agent-b');
let a: Signer;
let b: Signer;
beforeAll(() => {
  [a, b] = [f.signer('agent-a'), f.signer('agent-b')];
});

/** A signed record of a migration from a to b, countersigned by `by`. */
function record(by: Signer = b): SignedRecord {
  const r = sampleRecord({ name: a.name, fingerprint: a.fingerprint }, { name: by.name, fingerprint: by.fingerprint });
  const signature = signRecord(r, a);
  return {
    record: r,
    signature,
    countersignature: { status: 'signed', signature: countersignRecord(r, signature, by) },
  };
}

const command = (n: number): AuditBody => ({
  kind: 'command',
  caller: { name: 'alice', role: 'operator' },
  command: 'stop',
  args: { vm: `vm${n}` },
  result: { ok: { state: 'paused' } },
});

/** The text of a log `signer` (null: an agent without a key) wrote: open, then `bodies`. */
function log(bodies: AuditBody[], signer: Signer | null = a): string {
  let chain: AuditChain = chainAfter(undefined);
  const lines: string[] = [];
  const at = new Date();
  for (const body of [{ kind: 'open', certificate: signer?.certificate ?? null, pid: 1 } as AuditBody, ...bodies]) {
    const sealed = sealEntry(chain, { agent: signer?.name ?? 'agent-x', at, body }, signer ?? undefined);
    lines.push(sealed.line);
    chain = sealed.chain;
  }
  return lines.map((line) => `${line}\n`).join('');
}

const lines = (text: string): string[] => text.trimEnd().split('\n');
const join_ = (ls: string[]): string => ls.map((line) => `${line}\n`).join('');
const STANDARD = (): AuditBody[] => [
  command(1),
  { kind: 'record', role: 'source', record: record() },
  command(2),
  command(3),
];

describe('a log as written verifies', () => {
  it('chain and signatures: ok, with the entry count and the last line’s hash', () => {
    const text = log(STANDARD());
    const verdict = verifyAuditLog(text, f.trust);
    expect(verdict).toEqual({ ok: true, entries: 5, signed: true, lastHash: lineHash(lines(text)[4]!) });
    expect(verifyAuditLog(text)).toMatchObject({ ok: true, entries: 5, signed: false });
    expect(verifyAuditLog('', f.trust)).toMatchObject({ ok: true, entries: 0 });
  });

  it('every line is canonical JSON with seq counting from 1 and prev the hash of the line before', () => {
    const ls = lines(log(STANDARD()));
    ls.forEach((line, i) => {
      const entry = JSON.parse(line) as { seq: number; prev: string };
      expect(canonicalJson(entry)).toBe(line);
      expect(entry.seq).toBe(i + 1);
      expect(entry.prev).toBe(i === 0 ? AUDIT_GENESIS : lineHash(ls[i - 1]!));
    });
  });

  it('a log continued after a restart (a second open entry) verifies', () => {
    const first = log([command(1)]);
    let chain = chainAfter(lines(first).at(-1));
    let text = first;
    for (const body of [{ kind: 'open', certificate: a.certificate, pid: 2 } as AuditBody, command(2)]) {
      const sealed = sealEntry(chain, { agent: a.name, at: new Date(), body }, a);
      text += `${sealed.line}\n`;
      chain = sealed.chain;
    }
    expect(verifyAuditLog(text, f.trust)).toMatchObject({ ok: true, entries: 4 });
  });
});

describe('every change to one line is detected and named', () => {
  type Tamper = [string, (ls: string[]) => string[], number, RegExp, RegExp?];
  const edit = (i: number, change: (entry: Record<string, unknown>) => void) => (ls: string[]) => {
    const entry = JSON.parse(ls[i]!) as Record<string, unknown>;
    change(entry);
    return ls.map((line, j) => (j === i ? canonicalJson(entry) : line));
  };
  const tampers: Tamper[] = [
    ['delete the first line', (ls) => ls.slice(1), 1, /seq 2 where 1 was expected: entries before it were deleted/],
    ['delete a line in the middle', (ls) => ls.filter((_, i) => i !== 2), 3, /seq 4 where 3 was expected/],
    ['swap two lines', (ls) => [ls[0]!, ls[2]!, ls[1]!, ...ls.slice(3)], 2, /seq 3 where 2 was expected/],
    [
      'repeat a line',
      (ls) => [...ls.slice(0, 3), ls[2]!, ...ls.slice(3)],
      4,
      /seq 3 where 4 was expected: .* repeated/,
    ],
    [
      'edit a byte inside a value',
      (ls) => ls.map((line, i) => (i === 1 ? line.replace('"vm1"', '"vm7"') : line)),
      2,
      /entry signature does not verify/,
      /line 3: prev is not the hash of line 2: line 2 was edited/,
    ],
    [
      'edit a field (the line stays canonical)',
      edit(3, (e) => ((e.args as { vm: string }).vm = 'other')),
      4,
      /entry signature does not verify/,
      /line 5: prev is not the hash of line 4/,
    ],
    [
      'edit a signature',
      edit(2, (e) => {
        const sig = e.sig as { value: string };
        sig.value = (sig.value[0] === 'A' ? 'B' : 'A') + sig.value.slice(1);
      }),
      3,
      /entry signature does not verify/,
      /line 4: prev is not the hash of line 3/,
    ],
    [
      'edit the record inside an entry',
      edit(2, (e) => ((e.record as SignedRecord).record.outcome = 'failed')),
      3,
      /entry signature does not verify/,
    ],
    [
      'add a space',
      (ls) => ls.map((line, i) => (i === 1 ? line.replace(':', ': ') : line)),
      2,
      /not in canonical form/,
    ],
    ['break the JSON', (ls) => ls.map((line, i) => (i === 2 ? line.slice(0, 40) : line)), 3, /not valid JSON/],
  ];
  it.each(tampers)('%s: caught at the line it broke, with the reason', (_what, tamper, line, reason, chainOnly) => {
    const tampered = join_(tamper(lines(log(STANDARD()))));
    const verdict = verifyAuditLog(tampered, f.trust);
    expect(verdict).toMatchObject({ ok: false, line });
    expect(verdict.ok === false && `line ${verdict.line}: ${verdict.reason}`).toMatch(reason);
    // Without the CA only the chain is checked: an edit shows at the next line.
    if (chainOnly) {
      const plain = verifyAuditLog(tampered);
      expect(plain.ok === false && `line ${plain.line}: ${plain.reason}`).toMatch(chainOnly);
    }
  });

  it('a torn last line (no newline) is named', () => {
    const text = log([command(1)]);
    expect(verifyAuditLog(text.slice(0, -10), f.trust)).toMatchObject({ ok: false, line: 2, reason: /torn write/ });
  });

  it('cutting the tail off is NOT caught by the chain (the countersigned record at the peer anchors it)', () => {
    const ls = lines(log(STANDARD()));
    expect(verifyAuditLog(join_(ls.slice(0, 3)), f.trust)).toMatchObject({ ok: true, entries: 3 });
  });
});

describe('forgeries with keys outside the fleet', () => {
  it('a whole log written, chained and signed by a key outside the CA is refused at its open entry', async () => {
    const outsider = await f.fleet.outsider('agent-a');
    expect(verifyAuditLog(log([command(1)], outsider), f.trust)).toMatchObject({
      ok: false,
      line: 1,
      reason: /agent's certificate: the certificate .* is not issued by the fleet CA/,
    });
  });

  it('a record whose countersignature a key outside the CA made is refused, though its entry is signed', async () => {
    const outsider = await f.fleet.outsider('agent-b');
    const text = log([command(1), { kind: 'record', role: 'source', record: record(outsider) }]);
    expect(verifyAuditLog(text, f.trust)).toMatchObject({
      ok: false,
      line: 3,
      reason: /record .*: the countersignature: .*not issued by the fleet CA/,
    });
  });

  it('an entry signed by another agent of the fleet than the one that opened the log is refused', () => {
    const ls = lines(log([command(1)]));
    const chain = chainAfter(ls[1]);
    const foreign = sealEntry(chain, { agent: a.name, at: new Date(), body: command(2) }, b).line;
    expect(verifyAuditLog(join_([...ls, foreign]), f.trust)).toMatchObject({
      ok: false,
      line: 3,
      reason: /not by this run's certificate/,
    });
  });

  it('a destination keeps a record it refused — even one whose source signature is bad — and its log verifies', () => {
    const bad = record();
    bad.record.pages.sent += 1; // no longer what the source signed
    const refusedHere: SignedRecord = {
      ...bad,
      countersignature: {
        status: 'refused',
        by: b.name,
        reason: "the source's signature: the signature does not verify",
      },
    };
    expect(verifyAuditLog(log([{ kind: 'record', role: 'dest', record: refusedHere }], b), f.trust)).toMatchObject({
      ok: true,
    });
    // The same record kept as countersigned would be a break.
    const countersigned: AuditBody = {
      kind: 'record',
      role: 'dest',
      record: { ...bad, countersignature: record().countersignature },
    };
    expect(verifyAuditLog(log([countersigned], b), f.trust)).toMatchObject({ ok: false, line: 2 });
  });

  it('an unsigned log (an agent without --pki) verifies as a chain, and is refused with the CA', () => {
    const text = log([command(1)], null);
    expect(verifyAuditLog(text)).toMatchObject({ ok: true, entries: 2 });
    expect(verifyAuditLog(text, f.trust)).toMatchObject({ ok: false, line: 1, reason: /not signed/ });
  });
});

describe('helpers', () => {
  it('redactTickets replaces every ticket by its id, at any depth', () => {
    const ticket = 't'.repeat(43);
    expect(redactTickets({ vm: 'v', ticket, nested: [{ ticket }] })).toEqual({
      vm: 'v',
      ticketId: ticketIdOf(ticket),
      nested: [{ ticketId: ticketIdOf(ticket) }],
    });
  });

  it('parseAuditLog gives every line as an entry, or why not', () => {
    const text = `${lines(log([command(1)]))[0]}\nnonsense\n`;
    const parsed = parseAuditLog(text);
    expect(parsed[0]).toMatchObject({ line: 1, entry: { kind: 'open', seq: 1 } });
    expect(parsed[1]).toEqual({ line: 2, error: 'not valid JSON' });
  });

  it('chainAfter continues from the last line, and refuses a last line that is no entry', () => {
    const ls = lines(log([command(1)]));
    expect(chainAfter(ls[1])).toEqual({ seq: 2, prev: lineHash(ls[1]!) });
    expect(() => chainAfter('{"v":1}')).toThrow(/ERR_AUDIT|not an entry/);
  });
});
