/**
 * The secure flow from the command line, with real processes: two agents started with `--pki
 * --name` (one named 127.0.0.1, the other 127.0.0.2 — names their certificates carry, and the
 * addresses they listen on), an operator's `livemig prepare-incoming` on the destination, then
 * `livemig migrate --ticket` on the source. Mutual TLS on every connection; a client without a
 * certificate gets nothing; a migration without the ticket moves nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MigrationReport } from '@livemig/shared/report';
import { initPki, issueCertificate } from '@livemig/shared/security';
import { runCli, startAgent, stopAll } from '../helpers/processes.ts';
import { expectCompleted, expectOutcome } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'livemig-secure-cli-'));
  await initPki(dir);
  await issueCertificate(dir, { name: '127.0.0.1', role: 'agent' });
  await issueCertificate(dir, { name: '127.0.0.2', role: 'agent' });
  await issueCertificate(dir, { name: 'oscar', role: 'operator' });
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(stopAll);

const VM = ['--vm', 'vm', '--memory', '16MiB', '--init', 'random', '--workload', 'hotset:wss=2MiB,rate=5000'];

async function agents(): Promise<{ a: { control: string }; b: { control: string; listen: string } }> {
  const [a, b] = await Promise.all([
    startAgent('agent', ['--pki', dir, '--name', '127.0.0.1', ...VM]),
    startAgent('agent', [
      '--pki',
      dir,
      '--name',
      '127.0.0.2',
      '--listen',
      '127.0.0.2:0',
      '--control',
      '127.0.0.2:0',
      '--allow-source',
      '127.0.0.*',
    ]),
  ]);
  return { a, b };
}

/** The flags of an operator's commands. */
const operator = (): string[] => ['--pki', dir, '--name', 'oscar'];

/** `livemig migrate --json` of VM `vm`, as the operator. */
async function migrate(control: string, to: string, extra: string[] = []): Promise<MigrationReport> {
  const run = await runCli([
    'migrate',
    '--control',
    control,
    '--vm',
    'vm',
    '--to',
    to,
    '--json',
    ...extra,
    ...operator(),
  ]);
  return JSON.parse(run.stdout) as MigrationReport;
}

describe('livemig with --pki: the secure flow from the command line', () => {
  it('prepare-incoming on the destination, migrate --ticket on the source: the VM arrives, verified', async () => {
    const { a, b } = await agents();
    expect(a.control).toMatch(/^wss:\/\/127\.0\.0\.1:/);
    expect(b.control).toMatch(/^wss:\/\/127\.0\.0\.2:/);
    const prepared = await runCli([
      'prepare-incoming',
      '--control',
      b.control,
      '--vm',
      'vm',
      '--from',
      '127.0.0.1',
      ...operator(),
    ]);
    expect(prepared.code, prepared.stderr).toBe(0);
    const ticket = prepared.stdout.trim();
    expect(ticket).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const report = await migrate(a.control, b.listen, ['--ticket', ticket]);
    expectCompleted(report);
    expect(report.verify.match).toBe(true);
    // The report says how the data plane was secured, as the source's socket negotiated it.
    expect(report.security).toMatchObject({ tls: '1.3', sourceName: '127.0.0.1', destName: '127.0.0.2', ticket: true });
    expect(report.security?.cipher).toMatch(/^TLS_/);
    const status = await runCli(['status', '--control', b.control, '--json', ...operator()]);
    expect(JSON.parse(status.stdout).vms.map((v: { state: string }) => v.state)).toEqual(['running']);
  });

  it('without the ticket nothing moves; without a certificate a client gets nothing', async () => {
    const { a, b } = await agents();
    const report = await migrate(a.control, b.listen);
    expectOutcome(report, 'failed');
    expect(report.error?.code).toBe('ERR_TICKET_UNKNOWN');
    expect(report.bytes.pagePayload).toBe(0);
    // Two livemig processes, started together (two cores).
    const [anonymous, status] = await Promise.all([
      runCli(['status', '--control', a.control]),
      runCli(['status', '--control', a.control, '--json', ...operator()]),
    ]);
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toMatch(/ERR_(UNAUTHENTICATED|CONNECTION)/);
    expect(JSON.parse(status.stdout).vms.map((v: { state: string }) => v.state)).toEqual(['running']);
  });

  it('migrate --dest-control: prepare on the destination, migrate on the source, follow — one command', async () => {
    const { a, b } = await agents();
    // No --ticket and no --dest-name: the ticket comes from the destination, its name from its
    // certificate. Both of them together is bad input, refused before the agents are asked: that
    // command runs meanwhile (two cores).
    const [report, both] = await Promise.all([
      migrate(a.control, b.listen, ['--dest-control', b.control]),
      runCli([
        ...['migrate', '--control', a.control, '--vm', 'vm', '--to', b.listen],
        ...['--ticket', 'x', '--dest-control', b.control, ...operator()],
      ]),
    ]);
    expectCompleted(report);
    expect(report.verify.match).toBe(true);
    expect(report.security).toMatchObject({ sourceName: '127.0.0.1', destName: '127.0.0.2', ticket: true });
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/ERR_INVALID_ARGUMENT: give --ticket or --dest-control/);
  });
});

describe('--agent-name: the agent certificate a client expects', () => {
  it('is checked instead of the URL host: the right name connects, another is refused', async () => {
    const { b } = await agents();
    const [right, wrong] = await Promise.all([
      runCli(['status', '--control', b.control, '--agent-name', '127.0.0.2', '--json', ...operator()]),
      runCli(['status', '--control', b.control, '--agent-name', '127.0.0.1', ...operator()]),
    ]);
    expect(right.code, right.stderr).toBe(0);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/ERR_UNAUTHENTICATED/);
  });
});

describe('plaintext only on loopback, or on purpose', () => {
  it('an agent without --pki refuses to bind beyond loopback (ERR_INSECURE, exit 2)', async () => {
    const run = await runCli(['agent', '--listen', '0.0.0.0:0', '--control', '127.0.0.1:0']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/ERR_INSECURE: refusing plaintext beyond loopback \(listen 0\.0\.0\.0:0\)/);
  });

  it('on loopback it says it is plaintext at start', async () => {
    const agent = await startAgent('agent');
    expect(agent.control).toMatch(/^ws:\/\//);
    expect(agent.logs()).toMatch(/plaintext on loopback only: no authentication, no encryption/);
  });

  it('with --insecure it binds beyond loopback, warns at start and on every connection', async () => {
    const agent = await startAgent('agent', ['--insecure', '--control', '0.0.0.0:0']);
    expect(agent.logs()).toMatch(/INSECURE: plaintext beyond loopback/);
    const warnings = (): number => agent.logs().match(/INSECURE: plaintext connection/g)?.length ?? 0;
    const url = agent.control.replace('0.0.0.0', '127.0.0.1');
    for (let i = 1; i <= 2; i += 1) {
      const status = await runCli(['status', '--control', url]);
      expect(status.code, status.stderr).toBe(0);
      await waitUntil(() => warnings() >= i, { what: `warning for connection ${i}` });
    }
    expect(warnings()).toBe(2);
  });

  it('--insecure and --pki together are a usage error', async () => {
    const run = await runCli(['agent', '--insecure', ...operator()]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--insecure and --pki contradict/);
  });
});
