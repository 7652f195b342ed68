/**
 * Cancelling from the command line, with real processes and secure agents: `livemig migrate` as
 * a child that gets SIGINT (once: it cancels — the report says cancelled, the VM runs on at the
 * source, the destination keeps nothing; twice: it detaches with exit 130 and the migration
 * completes without it), `migrate --detach` (the id at once, the migration goes on), `livemig
 * migrate-cancel` by id from another process, and a cancel past post-copy's point of no return,
 * refused with the reason while the migration goes on to complete. A bandwidth cap keeps each
 * migration in flight for seconds: 32 MiB at 8 MB/s, about 4 s — Ctrl-C comes after the first
 * 2 MiB to a command already running and needs about 1 s (its grace second), and a test that waits
 * for the migration to complete waits out the rest, so more would only make the file slower. A
 * cancel from another command must outlast that command's start (1–4 s on a loaded machine): 64
 * MiB, about 8 s, which that test does not wait out.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MigrationInfo } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { useFleet, type FleetAgent } from '../helpers/fleet.ts';
import { spawnCli, stopAll, type RunningCli } from '../helpers/processes.ts';
import { expectCompleted, expectOutcome } from '../helpers/report.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();
afterEach(stopAll);
// One pair of agents for the file: each test boots its VM on the source, and it is destroyed on
// both after it. No test kills an agent; query-migrate without an id answers the latest migration.
const pair = useSharedPair({ start: () => fleet.pair(), ask: fleet.ask });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const VM = { init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 9 };
const spec = parseVmSpec({ ...VM, memory: '32MiB' });
const large = parseVmSpec({ ...VM, memory: '64MiB' });

/** The operator's `livemig migrate` of VM `vm` from `source` to `dest`, capped at `bandwidth`, then `extra`. */
function migrateArgs(source: FleetAgent, dest: FleetAgent, extra: readonly string[], bandwidth = '8MB/s'): string[] {
  return [
    ...['migrate', '--control', source.control, '--vm', 'vm', '--to', dest.listen, '--dest-control', dest.control],
    ...['--max-bandwidth', bandwidth, ...extra],
  ];
}

/** `livemig <args>` as the operator, as a child we can send signals to. */
const spawnCliAs = (args: readonly string[]): RunningCli =>
  spawnCli([...args, '--pki', fleet.pkiDir, '--name', 'operator']);

/** The source's migration in flight once it is in `status` (and, pre-copy, has sent a few MiB). */
function inFlight(source: FleetAgent, status: string): Promise<MigrationInfo> {
  return waitUntil(
    async () => {
      const info = await fleet.ask(source, (c) => c.request('query-migrate', {}));
      if (info?.direction !== 'outgoing' || info.status !== status) return undefined;
      return status !== 'precopy' || info.transferred > 2 << 20 ? info : undefined;
    },
    { what: `a migration in ${status}`, timeoutMs: 60_000 },
  );
}

/** Wait until the source says the migration is over, and give its report. */
function reportOf(source: FleetAgent, migrationId: string): Promise<MigrationReport> {
  return waitUntil(
    () => fleet.ask(source, (c) => c.request('query-report', { migrationId })).then((r) => r ?? undefined),
    {
      what: `the report of ${migrationId}`,
      timeoutMs: 90_000,
    },
  );
}

/** The VM ran on at the source, the destination kept nothing. */
async function expectStayedOnSource(source: FleetAgent, dest: FleetAgent): Promise<void> {
  const [vm] = await fleet.vms(source);
  expect(vm?.state).toBe('running');
  await waitUntil(async () => ((await fleet.vms(source))[0]?.steps ?? 0) > vm!.steps, { what: 'the VM runs on' });
  await waitUntil(async () => (await fleet.vms(dest)).length === 0, { what: 'the destination discards its copy' });
}

/** The VM left the source and runs on the destination. */
async function expectMoved(source: FleetAgent, dest: FleetAgent): Promise<void> {
  expect((await fleet.vms(source))[0]?.state).toBe('migrated');
  expect((await fleet.vms(dest))[0]).toMatchObject({ name: 'vm', state: 'running' });
}

describe('Ctrl-C on livemig migrate', () => {
  it('once: says it cancels, then the report says cancelled (exit 1); the VM runs on at the source', async () => {
    const [source, dest] = await pair.boot('vm', spec);
    const migrate = spawnCliAs(migrateArgs(source, dest, ['--json']));
    const { migrationId } = await inFlight(source, 'precopy');
    migrate.child.kill('SIGINT');
    expect(await migrate.exited, migrate.err()).toBe(1);
    expect(migrate.err()).toContain(`livemig: cancelling migration ${migrationId} in 1 s — Ctrl-C again to detach`);
    expect(migrate.err()).toContain(`livemig: cancelling migration ${migrationId} (Ctrl-C again to stop waiting)`);
    const report = JSON.parse(migrate.out()) as MigrationReport;
    expect(report.migrationId).toBe(migrationId);
    expectOutcome(report, 'cancelled');
    expect(report.error?.code).toBe('ERR_CANCELLED');
    expect(report.vmRunsOn).toBe('source');
    await expectStayedOnSource(source, dest);
  });

  it('twice: detaches with exit 130, saying how to follow and cancel it; the migration completes', async () => {
    const [source, dest] = await pair.boot('vm', spec);
    const migrate = spawnCliAs(migrateArgs(source, dest, []));
    const { migrationId } = await inFlight(source, 'precopy');
    migrate.child.kill('SIGINT');
    await waitUntil(() => migrate.err().includes('Ctrl-C again to detach'), { what: 'the first Ctrl-C answered' });
    migrate.child.kill('SIGINT');
    expect(await migrate.exited, migrate.err()).toBe(130);
    expect(migrate.out()).toBe('');
    expect(migrate.err()).toContain(`livemig: detached from migration ${migrationId}, which goes on\n`);
    expect(migrate.err()).toMatch(
      /follow it: {2}livemig status --control wss:\/\/127\.0\.0\.\d+:\d+ --pki \S+ --name operator/,
    );
    expect(migrate.err()).toMatch(
      new RegExp(`cancel it: {2}livemig migrate-cancel --control \\S+ .*--migration ${migrationId}`),
    );
    expect(migrate.err()).not.toMatch(/ERR_/);
    expectCompleted(await reportOf(source, migrationId));
    await expectMoved(source, dest);
  });
});

describe('livemig migrate --detach, and livemig migrate-cancel', () => {
  it('--detach --json prints {"migrationId"} at once; the migration goes on to complete', async () => {
    const [source, dest] = await pair.boot('vm', spec);
    const detach = spawnCliAs(migrateArgs(source, dest, ['--detach', '--json']));
    expect(await detach.exited, detach.err()).toBe(0);
    const { migrationId } = JSON.parse(detach.out()) as { migrationId: string };
    expect(migrationId).toMatch(UUID);
    expect(detach.err()).toBe('');
    // At once: 32 MiB at 8 MB/s takes seconds, and it is still going when the command is done.
    const info = await fleet.ask(source, (c) => c.request('query-migrate', { migrationId }));
    expect(['setup', 'precopy']).toContain(info?.status);
    expectCompleted(await reportOf(source, migrationId));
    await expectMoved(source, dest);
  });

  it('migrate-cancel --migration ID from another process cancels a detached migration; again: over already', async () => {
    const [source, dest] = await pair.boot('vm', large);
    const detach = spawnCliAs(migrateArgs(source, dest, ['--detach']));
    expect(await detach.exited, detach.err()).toBe(0);
    const migrationId = detach.out().trim();
    expect(migrationId).toMatch(UUID);
    expect(detach.err()).toContain(`cancel it:  livemig migrate-cancel --control ${source.control}`);
    await inFlight(source, 'precopy');

    const cancel = await fleet.cli(['migrate-cancel', '--control', source.control, '--migration', migrationId]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout).toBe(
      `cancelling migration ${migrationId} of vm\nmigration ${migrationId}: cancelled; the VM runs on: source\n`,
    );
    const report = await reportOf(source, migrationId);
    expectOutcome(report, 'cancelled');
    expect(report.error?.code).toBe('ERR_CANCELLED');
    await expectStayedOnSource(source, dest);

    const again = await fleet.cli(['migrate-cancel', '--control', source.control, '--migration', migrationId]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`livemig: ERR_VM_STATE: migration ${migrationId} is over already (cancelled)\n`);
    // The destination knows the migration too, as an incoming one: cancelling is the source's.
    const incoming = await fleet.cli(['migrate-cancel', '--control', dest.control]);
    expect(incoming.code).toBe(1);
    expect(incoming.stderr).toBe(
      `livemig: ERR_NOT_FOUND: migration ${migrationId} of vm is an incoming one here: migrate-cancel runs on its source agent\n`,
    );
    const idle = await fleet.agent();
    const none = await fleet.cli(['migrate-cancel', '--control', idle.control]);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(`livemig: ERR_NOT_FOUND: no migration on the agent at ${idle.control}\n`);
  });

  it("past post-copy's point of no return: migrate-cancel and Ctrl-C are refused with the reason; it completes", async () => {
    // 40 MiB at 4 MB/s: about ten seconds of post-copy push after the handoff, for two refusals
    // and a --resume on the destination, each a CLI started on a slow machine.
    const small = parseVmSpec({ memory: '40MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 6 });
    const [source, dest] = await pair.boot('vm', small);
    const migrate = spawnCliAs(migrateArgs(source, dest, ['--mode', 'postcopy', '--json'], '4MB/s'));
    const { migrationId } = await inFlight(source, 'postcopy');

    // Ctrl-C first: its grace second runs while the other command starts.
    migrate.child.kill('SIGINT');
    const cancel = await fleet.cli(['migrate-cancel', '--control', source.control]);
    expect(cancel.code).toBe(1);
    expect(cancel.stderr).toMatch(
      /^livemig: ERR_VM_STATE: cannot cancel: the migration is past the point of no return \(postcopy\); .+\n$/,
    );

    await waitUntil(() => migrate.err().includes('following it to the end'), { what: 'the refusal shown' }).catch(
      (error: unknown) => {
        throw new Error(`${String(error)}; the command's stderr: ${migrate.err()}`);
      },
    );
    expect(migrate.err()).toMatch(
      /livemig: ERR_VM_STATE: cannot cancel: the migration is past the point of no return \(postcopy\); .+; following it to the end \(Ctrl-C again to detach\)\n/,
    );
    // --resume is the source's too: on the destination this migration is an incoming one. (After
    // the refusal, not before: the push must still be going when Ctrl-C comes.)
    const resume = await fleet.cli(['migrate', '--control', dest.control, '--resume']);
    expect(resume.code).toBe(1);
    expect(resume.stderr).toMatch(
      new RegExp(`^livemig: ERR_NOT_FOUND: no outgoing migration on this agent \\(${migrationId} here is incoming`),
    );

    expect(await migrate.exited, migrate.err()).toBe(0);
    const report = JSON.parse(migrate.out()) as MigrationReport;
    expect(report.migrationId).toBe(migrationId);
    expectCompleted(report);
    await expectMoved(source, dest);
  });
});
