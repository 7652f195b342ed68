/**
 * The stop-and-copy watchdog with real processes (ARCHITECTURE.md §8: "destination frozen at
 * stop-and-copy → VM resumed on the source within the switchover timeout; never two running
 * copies"). The destination agent is frozen with SIGSTOP at stop-and-copy; the source must
 * resume the VM within `--switchover-timeout` and fail the migration with ERR_SWITCHOVER_TIMEOUT;
 * after SIGCONT the destination discards its copy instead of running a second one, and the VM
 * the source kept is intact (determinism oracle) and can still migrate to that destination.
 *
 * When to freeze: a frame relay between the two (plaintext on loopback; nothing here is about
 * the data plane's protection) sees the first CpuState go by — CPU state travels only at
 * stop-and-copy, after the vCPU paused — and sends SIGSTOP before it forwards that chunk. So the
 * destination is frozen before it can have the CPU state, StopCopyEnd or a chance to say Ready:
 * no timing window, no sleep.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ControlClient, type VmInfo } from '@livemig/shared/control';
import { MsgType } from '@livemig/shared/protocol';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { checkOracle } from '../../cli/oracle.ts';
import { startCuttingRelay, type Relay } from '../helpers/cutting-relay.ts';
import { runCli, startAgent, startSourceWithVm, stopAll } from '../helpers/processes.ts';
import { expectCompleted, expectOutcome } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

const spec = parseVmSpec({ memory: '16MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 13 });
/** The bound under test: well above a loaded machine's stop-and-copy of 16 MiB, well below the test's patience. */
const SWITCHOVER_TIMEOUT_MS = 1500;
/**
 * How late after the bound the VM may resume: the watchdog's timer firing on a busy event loop
 * plus rollback (closing two sockets, resuming the vCPU). Generous for a 2-core machine running
 * other tests; the figures measured are logged either way.
 */
const SLACK_MS = 1000;

const relays: Relay[] = [];
afterEach(async () => {
  await Promise.all(relays.splice(0).map((relay) => relay.close()));
  await stopAll();
});

/** `livemig migrate --json` of VM `vm`; its report (exit status 1 when it did not complete). */
async function migrate(control: string, to: string, extra: string[]): Promise<MigrationReport> {
  const run = await runCli(['migrate', '--control', control, '--vm', 'vm', '--to', to, '--json', ...extra]);
  expect(run.stdout, run.stderr).not.toBe('');
  return JSON.parse(run.stdout) as MigrationReport;
}

async function vms(control: string): Promise<VmInfo[]> {
  const client = await ControlClient.connect(control);
  try {
    return (await client.request('query-vms', {})).vms;
  } finally {
    client.close();
  }
}

describe('stop-and-copy watchdog: a destination frozen at stop-and-copy', () => {
  it('SIGSTOP at stop-and-copy: the VM resumes on the source within --switchover-timeout; after SIGCONT the destination discards its copy', async () => {
    const [source, dest] = await Promise.all([startSourceWithVm('vm', spec), startAgent('dest')]);
    const [host, port] = dest.listen.split(':') as [string, string];
    let frozenAt: number | undefined;
    const relay = await startCuttingRelay({ host, port: Number(port) }, (direction, message) => {
      if (frozenAt === undefined && direction === 'to-dest' && message.type === MsgType.CpuState) {
        dest.child.kill('SIGSTOP');
        frozenAt = Date.now();
      }
      return 'forward';
    });
    relays.push(relay);

    // What the source says happened, on its own clock, as its control channel tells it.
    const watch = await ControlClient.connect(source.control);
    const events: Array<{ what: string; at: number }> = [];
    watch.on('MIGRATION', ({ status }, at) => events.push({ what: `migration ${status}`, at }));
    watch.on('VM_STATE', ({ state }, at) => events.push({ what: `vm ${state}`, at }));
    try {
      const report = await migrate(source.control, relay.address, [
        '--downtime-limit',
        '100ms',
        '--switchover-timeout',
        `${SWITCHOVER_TIMEOUT_MS}ms`,
      ]);
      expect(frozenAt, 'the relay saw stop-and-copy begin').toBeDefined();
      expectOutcome(report, 'failed');
      expect(report.error?.code).toBe('ERR_SWITCHOVER_TIMEOUT');
      expect(report.vmRunsOn).toBe('source');
      expect(report.switchover?.switchoverTimeoutMs).toBe(SWITCHOVER_TIMEOUT_MS);
      expect(report.times.downtimeMs).toBeNull();

      // Paused for the bound, then resumed at once: the report's figure (pause → resume, the
      // source's monotonic clock) and the control channel's events (the source's wall clock).
      const pausedMs = report.times.pausedOnSourceMs;
      const stopCopyAt = events.find((e) => e.what === 'migration stopcopy')?.at;
      const resumedAt = events.find((e) => e.what === 'vm running')?.at;
      expect(stopCopyAt, JSON.stringify(events)).toBeDefined();
      expect(resumedAt, JSON.stringify(events)).toBeDefined();
      const eventsMs = resumedAt! - stopCopyAt!;
      console.log(
        `switchover watchdog: timeout ${SWITCHOVER_TIMEOUT_MS} ms; guest paused on the source ` +
          `${pausedMs?.toFixed(1)} ms (report), stopcopy → running ${eventsMs} ms (control events)`,
      );
      expect(pausedMs).toBeGreaterThanOrEqual(SWITCHOVER_TIMEOUT_MS - 5);
      expect(pausedMs).toBeLessThanOrEqual(SWITCHOVER_TIMEOUT_MS + SLACK_MS);
      expect(eventsMs).toBeLessThanOrEqual(SWITCHOVER_TIMEOUT_MS + SLACK_MS);
      expect(events.map((e) => e.what)).toContain('migration failed');
      expect((await vms(source.control)).map((v) => v.state)).toEqual(['running']);
    } finally {
      watch.close();
    }

    // Thaw the destination: it reads what was queued for it — the rest of stop-and-copy, the
    // source's Error, the closed connection — and must discard its copy, never run it.
    dest.child.kill('SIGCONT');
    const seen = new Set<string>();
    await waitUntil(
      async () => {
        const list = await vms(dest.control);
        for (const vm of list) seen.add(vm.state);
        // Its log line comes after the VM is gone: wait for both.
        return list.length === 0 && /half-built VM was discarded/.test(dest.logs());
      },
      { what: 'the destination discarded its copy (and logged it)', timeoutMs: 20_000 },
    );
    expect([...seen].filter((state) => state !== 'incoming')).toEqual([]);
    expect(dest.logs()).not.toMatch(/"event":"vm\.resumed"/);

    // One copy, intact: the source's VM equals a never-migrated reference at the same step …
    const oracle = await checkOracle(source.control, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    // … and, running again, it migrates to that same destination, which kept nothing in the way.
    const cont = await ControlClient.connect(source.control);
    await cont.request('cont', { vm: 'vm' }).finally(() => cont.close());
    const again = await migrate(source.control, dest.listen, []);
    expectCompleted(again);
    expect(again.verify.match).toBe(true);
    expect((await vms(dest.control)).map((v) => v.state)).toEqual(['running']);
  });
});
