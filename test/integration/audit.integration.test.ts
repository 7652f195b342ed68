/**
 * Non-repudiation with real processes: two secure agents (`--pki`, `--audit-log`), an operator
 * migrating a VM there and back (pre-copy, then post-copy) and stopping and continuing it, and
 * a migration without a ticket that fails. Then, from the command line:
 *
 * - `livemig audit verify` passes on both agents' logs, and every migration's record in the
 *   report is signed by the source and countersigned by the destination, naming the operator;
 * - deleting, reordering or editing any one line of a log (a byte, a field, a signature) makes
 *   it fail, naming the line and the reason;
 * - a record whose countersignature a key outside the fleet CA made is detected, even when the
 *   agent re-signs and re-chains its whole log around it (a source lying about its peer);
 * - a destination that does not negotiate `signed-record` (an older build) still takes the VM,
 *   and the record says the countersignature is missing and why.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MigrationReport } from '@livemig/shared/report';
import {
  canonicalJson,
  chainAfter,
  countersignRecord,
  createSigner,
  initPki,
  issueCertificate,
  loadPki,
  sealEntry,
  signRecord,
  type AuditBody,
  type AuditChain,
  type AuditEntry,
} from '@livemig/shared/security';
import { runCli, startAgent, stopAll, type AgentProcess } from '../helpers/processes.ts';
import { expectCompleted, expectOutcome } from '../helpers/report.ts';

let dir: string;
/** Another CA, issuing a certificate with the destination's name: a key outside the fleet. */
let otherCa: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemig-audit-'));
  otherCa = join(dir, 'other-ca');
  await Promise.all([initPki(join(dir, 'pki')), initPki(otherCa)]);
  for (const name of ['127.0.0.1', '127.0.0.2']) await issueCertificate(join(dir, 'pki'), { name, role: 'agent' });
  await issueCertificate(join(dir, 'pki'), { name: 'oscar', role: 'operator' });
  await issueCertificate(otherCa, { name: '127.0.0.2', role: 'agent' });
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(stopAll);

const pki = (): string => join(dir, 'pki');
const VM = ['--memory', '16MiB', '--init', 'random', '--workload', 'hotset:wss=2MiB,rate=5000'];
const operator = (): string[] => ['--pki', pki(), '--name', 'oscar'];

/** A secure agent named after its loopback address, with its audit log at `log`. */
function agent(address: string, log: string, extra: readonly string[] = []): Promise<AgentProcess> {
  return startAgent('agent', [
    ...['--pki', pki(), '--name', address, '--audit-log', log, '--allow-source', '127.0.0.*'],
    ...['--listen', `${address}:0`, '--control', `${address}:0`],
    ...extra,
  ]);
}

/** A ticket from `dest` for the VM from `from`, as the operator. */
async function ticket(dest: AgentProcess, from: string): Promise<string> {
  const run = await runCli([
    'prepare-incoming',
    '--control',
    dest.control,
    '--vm',
    'vm',
    '--from',
    from,
    ...operator(),
  ]);
  expect(run.code, run.stderr).toBe(0);
  return run.stdout.trim();
}

/** `livemig migrate --json` of the VM, as the operator. */
async function migrate(from: AgentProcess, to: AgentProcess, extra: readonly string[]): Promise<MigrationReport> {
  const args = ['migrate', '--control', from.control, '--vm', 'vm', '--to', to.listen, '--json', ...extra];
  const run = await runCli([...args, ...operator()]);
  expect(run.stdout, run.stderr).toMatch(/^\{/);
  return JSON.parse(run.stdout) as MigrationReport;
}

async function verify(log: string, withPki = true): Promise<{ code: number | null; out: string }> {
  const run = await runCli(['audit', 'verify', '--log', log, ...(withPki ? ['--pki', pki()] : [])]);
  return { code: run.code, out: run.stdout + run.stderr };
}

const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8')).trimEnd().split('\n');
const entries = async (file: string): Promise<AuditEntry[]> =>
  (await lines(file)).map((line) => JSON.parse(line) as AuditEntry);

/** The logs the first test wrote, for the tests that tamper with them. */
const logs = { a: '', b: '' };

describe('audit logs of secure agents', () => {
  it('after migrations there and back and a few commands, audit verify passes on both agents’ logs', async () => {
    logs.a = join(dir, 'a', 'audit.log');
    logs.b = join(dir, 'b', 'audit.log');
    const [a, b] = await Promise.all([agent('127.0.0.1', logs.a, ['--vm', 'vm', ...VM]), agent('127.0.0.2', logs.b)]);

    const there = await ticket(b, '127.0.0.1');
    const first = await migrate(a, b, ['--ticket', there]);
    expectCompleted(first);
    // The report carries the record: both sides' digests as each computed them, the operator, both signatures.
    const record = first.record!;
    expect(record.record).toMatchObject({
      outcome: 'completed',
      mode: 'precopy',
      vm: { name: 'vm' },
      source: { name: '127.0.0.1' },
      dest: { name: '127.0.0.2' },
      operator: { name: 'oscar', role: 'operator' },
      ticketId: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    for (const [section, digests] of Object.entries(first.verify.sections ?? {})) {
      expect(record.record.digests.source[section]).toBe(digests.source);
      expect(record.record.digests.dest[section]).toBe(digests.dest);
    }
    expect(record.signature?.by).toBe('127.0.0.1');
    expect(record.countersignature).toMatchObject({ status: 'signed', signature: { by: '127.0.0.2' } });

    for (const command of ['stop', 'cont']) {
      const run = await runCli([command, '--control', b.control, '--vm', 'vm', ...operator()]);
      expect(run.code, run.stderr).toBe(0);
    }
    const back = await ticket(a, '127.0.0.2');
    const second = await migrate(b, a, ['--ticket', back, '--mode', 'postcopy']);
    expectCompleted(second);
    expect(second.record?.countersignature).toMatchObject({ status: 'signed', signature: { by: '127.0.0.1' } });

    const refused = await migrate(a, b, []);
    expectOutcome(refused, 'failed');
    expect(refused.record?.record).toMatchObject({ outcome: 'failed', error: 'ERR_TICKET_UNKNOWN' });
    expect(refused.record?.countersignature).toMatchObject({ status: 'missing', reason: /data channel is closed/ });

    // The checks are each a livemig process: started together (two cores), then judged in turn.
    const [verifiedA, verifiedB, show] = await Promise.all([
      verify(logs.a),
      verify(logs.b),
      runCli(['audit', 'show', '--log', logs.a, '--vm', 'vm']),
    ]);
    for (const [log, result] of [
      [logs.a, verifiedA],
      [logs.b, verifiedB],
    ] as const) {
      expect(result.out).toMatch(/^ok \d+ entries \(hash chain, entry signatures, records/);
      expect(result.code).toBe(0);
      // A ticket is a secret: the logs keep its id only.
      const text = await readFile(log, 'utf8');
      for (const secret of [there, back]) expect(text).not.toContain(secret);
    }
    const onA = await entries(logs.a);
    expect(
      onA.map((e) => (e.kind === 'command' ? e.command : e.kind === 'record' ? `record:${e.role}` : e.kind)),
    ).toEqual(['open', 'migrate', 'record:source', 'prepare-incoming', 'record:dest', 'migrate', 'record:source']);
    expect(onA[1]).toMatchObject({ kind: 'command', caller: { name: 'oscar', role: 'operator' }, result: { ok: {} } });
    const onB = await entries(logs.b);
    expect(onB.filter((e) => e.kind === 'command').map((e) => e.kind === 'command' && e.command)).toEqual([
      'prepare-incoming',
      'stop',
      'cont',
      'migrate',
    ]);

    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/oscar \(operator\): migrate vm=vm .* → ok migrationId=/);
    expect(show.stdout).toMatch(
      /record \(source\): precopy migration of vm 127\.0\.0\.1 → 127\.0\.0\.2: completed, asked by oscar \(operator\).*signed by 127\.0\.0\.1, countersigned by 127\.0\.0\.2/,
    );
    expect(show.stdout).toMatch(/record \(source\): .*failed \(ERR_TICKET_UNKNOWN\).*countersignature missing/);
  });

  describe('tampering with one line of a log is detected and named (line, reason)', () => {
    type Tamper = [string, (ls: string[]) => string[], RegExp];
    const field = (i: number, change: (entry: AuditEntry & Record<string, unknown>) => void) => (ls: string[]) => {
      const entry = JSON.parse(ls[i]!) as AuditEntry & Record<string, unknown>;
      change(entry);
      return ls.map((line, j) => (j === i ? canonicalJson(entry) : line));
    };
    const tampers: Tamper[] = [
      [
        'deleting a line',
        (ls) => ls.filter((_, i) => i !== 3),
        /line 4: seq 5 where 4 was expected: .*deleted or moved/,
      ],
      ['reordering two lines', (ls) => [...ls.slice(0, 2), ls[3]!, ls[2]!, ...ls.slice(4)], /line 3: seq 4 where 3/],
      [
        'editing a byte',
        (ls) => ls.map((line, i) => (i === 1 ? line.replace('"vm":"vm"', '"vm":"vX"') : line)),
        /line 2: the entry signature does not verify/,
      ],
      [
        'editing a field of a record (its page count)',
        field(2, (e) => {
          if (e.kind === 'record') e.record.record.pages.sent -= 1;
        }),
        /line 3: the entry signature does not verify/,
      ],
      [
        'editing a signature',
        field(1, (e) => {
          e.sig!.value = `${e.sig!.value[0] === 'A' ? 'B' : 'A'}${e.sig!.value.slice(1)}`;
        }),
        /line 2: the entry signature does not verify/,
      ],
    ];
    it.each(tampers)('%s', async (_what, tamper, reason) => {
      const file = join(dir, `tampered-${Math.random().toString(36).slice(2)}.log`);
      await writeFile(file, tamper(await lines(logs.a)).join('\n') + '\n');
      const result = await verify(file);
      expect(result.code).toBe(1);
      expect(result.out).toMatch(reason);
    });

    it('an edited byte shows without the CA too: the chain breaks at the next line', async () => {
      const file = join(dir, 'tampered-chain.log');
      const ls = await lines(logs.b);
      const at = ls.findIndex((line) => line.includes('"command":"stop"'));
      await writeFile(file, ls.map((l, i) => (i === at ? l.replace('"stop"', '"halt"') : l)).join('\n') + '\n');
      const result = await verify(file, false);
      expect(result.code).toBe(1);
      expect(result.out).toContain(`line ${at + 2}: prev is not the hash of line ${at + 1}: line ${at + 1} was edited`);
    });
  });

  it('a record with a forged countersignature (a key outside the CA) is detected, even in a re-signed log', async () => {
    // The source rewrites its own log: the record names a destination certificate the fleet CA
    // never issued (same name), is re-signed by the source and "countersigned" with that
    // certificate's key, and every entry is re-signed with the source's key and re-chained.
    const source = createSigner(await loadPki(pki(), '127.0.0.1'));
    const forger = createSigner(await loadPki(otherCa, '127.0.0.2'));
    let chain: AuditChain = chainAfter(undefined);
    const out: string[] = [];
    let forgedAt = 0;
    for (const entry of await entries(logs.a)) {
      const { v: _v, seq: _seq, at, agent: name, prev: _prev, sig: _sig, ...body } = entry;
      if (body.kind === 'record' && body.role === 'source' && forgedAt === 0) {
        const record = { ...body.record.record, dest: { name: forger.name, fingerprint: forger.fingerprint } };
        const signature = signRecord(record, source);
        const countersignature = countersignRecord(record, signature, forger);
        body.record = { record, signature, countersignature: { status: 'signed', signature: countersignature } };
        forgedAt = out.length + 1;
      }
      const sealed = sealEntry(chain, { agent: name, at: new Date(at), body: body as AuditBody }, source);
      out.push(sealed.line);
      chain = sealed.chain;
    }
    const file = join(dir, 'forged.log');
    await writeFile(file, out.join('\n') + '\n');
    const result = await verify(file);
    expect(result.code).toBe(1);
    expect(result.out).toMatch(
      new RegExp(`line ${forgedAt}: record .*: the countersignature: the certificate .* is not issued by the fleet CA`),
    );
  });

  it('a destination without signed-record (an older build) takes the VM; the record says the countersignature is missing', async () => {
    const logA = join(dir, 'old-peer', 'a.log');
    const logB = join(dir, 'old-peer', 'b.log');
    const [a, b] = await Promise.all([
      agent('127.0.0.1', logA, ['--vm', 'vm', ...VM]),
      agent('127.0.0.2', logB, ['--capabilities', 'postcopy,fault-channel,setup-bitmap,zero-pages']),
    ]);
    const report = await migrate(a, b, ['--ticket', await ticket(b, '127.0.0.1')]);
    expectCompleted(report);
    expect(report.record?.signature?.by).toBe('127.0.0.1');
    expect(report.record?.countersignature).toEqual({
      status: 'missing',
      reason: expect.stringMatching(/did not negotiate signed-record/),
    });
    for (const result of await Promise.all([verify(logA), verify(logB)])) expect(result.code, result.out).toBe(0);
    expect((await entries(logB)).some((e) => e.kind === 'record')).toBe(false);
  });

  it('one agent per log: a second agent on a log in use refuses to start (ERR_AUDIT)', async () => {
    const log = join(dir, 'shared', 'audit.log');
    await agent('127.0.0.1', log);
    const second = await runCli([
      'agent',
      ...['--pki', pki(), '--name', '127.0.0.1', '--audit-log', log],
      ...['--listen', '127.0.0.1:0', '--control', '127.0.0.1:0'],
    ]);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(/ERR_AUDIT: the audit log is in use by process \d+/);
  });
});
