/**
 * No thread left behind (issues 17 and 18): a migration that compresses pages in worker threads
 * (`--compress lz4 --compress-threads 2`) ends every one of them, whichever way it ends —
 * completed, cancelled mid-round, or failed because the destination was killed mid-round. What is
 * counted is the agents' OS threads as the kernel sees them (/proc/<pid>/task), against a
 * baseline taken with the agents started and the VM booted, before any migration: after the
 * migration each agent is back to exactly that count (less the VM's own threads where the VM
 * left). Each agent is `node bin/livemig.mjs` itself (tsx registers in-process), so the child's
 * pid is the agent's.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ControlClient } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { ask, vmStates } from '../helpers/plain-agents.ts';
import { startAgent, stopAll, type AgentProcess } from '../helpers/processes.ts';
import { expectCompleted, expectOutcome } from '../helpers/report.ts';
import { sampleThreads, threadCount, waitForThreads } from '../helpers/threads.ts';
import { waitUntil } from '../helpers/wait.ts';

afterEach(stopAll);

/** Compressible memory (`realistic`), small enough that each migration takes about a second. */
const spec = parseVmSpec({ memory: '32MiB', init: 'realistic', workload: 'hotset:wss=2MiB,rate=5000', seed: 18 });
const COMPRESS = { compress: 'lz4', compressThreads: 2 } as const;

function pid(agent: AgentProcess): number {
  if (agent.child.pid === undefined) throw new Error(`the ${agent.role} agent has no pid`);
  return agent.child.pid;
}

/**
 * Two idle agents, their thread counts, then `vm` booted on the source (create-vm, as virsh
 * create) and the source's count with it: the baselines.
 */
async function agentsWithVm(): Promise<{
  source: AgentProcess;
  dest: AgentProcess;
  idle: { source: number; dest: number };
  withVm: number;
}> {
  const [source, dest] = await Promise.all([startAgent('agent'), startAgent('agent')]);
  const idle = { source: threadCount(pid(source)), dest: threadCount(pid(dest)) };
  await ask(source, (client) =>
    client.request('create-vm', {
      name: 'vm',
      memory: spec.memoryBytes,
      init: spec.init,
      workload: spec.workload,
      seed: spec.seed,
    }),
  );
  const withVm = threadCount(pid(source));
  // The VM's vCPU runs in a thread of its own: what "the VM left" takes away below.
  expect(withVm).toBeGreaterThan(idle.source);
  return { source, dest, idle, withVm };
}

/** Start migrating `vm` from `source` to `dest` with compression, capped at `maxBandwidthBps`. */
async function startMigration(
  client: ControlClient,
  dest: AgentProcess,
  maxBandwidthBps: number,
): Promise<{ id: string; report: Promise<MigrationReport> }> {
  const { migrationId } = await client.request('migrate', {
    vm: 'vm',
    to: dest.listen,
    params: { ...COMPRESS, maxBandwidthBps },
  });
  return { id: migrationId, report: followMigration(client, migrationId, { progress: false }) };
}

/** The compress workers that did any work in the migration (the report's busy time per thread). */
function compressWorkersUsed(report: MigrationReport): number {
  return report.encodings?.compression?.busyMs.filter((ms) => ms > 0).length ?? 0;
}

/**
 * Mid-round with the compress workers alive: at least 1 MiB sent, the source above its
 * baseline by a worker or more (a deadline-bounded wait on both).
 */
async function midRoundWithWorkers(client: ControlClient, id: string, source: AgentProcess, withVm: number) {
  await waitUntil(
    async () => {
      const info = await client.request('query-migrate', { migrationId: id });
      const midRound = info?.direction === 'outgoing' && info.status === 'precopy' && info.transferred >= 1 << 20;
      return midRound && threadCount(pid(source)) > withVm;
    },
    { what: 'a pre-copy round under way with its compress workers running' },
  );
}

describe('no thread left behind by compression', () => {
  it('a completed migration: the source is back to its idle count, the destination too once the VM is destroyed', async () => {
    const { source, dest, idle, withVm } = await agentsWithVm();
    const sampled = sampleThreads(pid(source));
    const report = await ask(source, async (client) => (await startMigration(client, dest, 16e6)).report);
    sampled.stop();
    expectCompleted(report);
    const compression = report.encodings?.compression;
    expect(compression, JSON.stringify(report.encodings)).toMatchObject({ mode: 'lz4', threads: 2 });
    expect(compression!.pages).toBeGreaterThan(0);
    // The workers were there (threads above the baseline while it ran) …
    // Both: the sender keeps one batch ahead per thread (page-sender.ts).
    const workers = compressWorkersUsed(report);
    expect(workers, JSON.stringify(report.encodings?.compression)).toBe(2);
    expect(sampled.peak).toBeGreaterThanOrEqual(withVm + workers);
    // … and are gone, with the VM's vCPU (the VM left): the agent as it was before the VM.
    expect(await vmStates(source)).toEqual(['migrated']);
    await waitForThreads(pid(source), idle.source, 'the source ends its compress workers and the VM’s threads');
    // The destination decompresses on its own thread: destroying the VM that arrived takes it back to idle.
    expect(await vmStates(dest)).toEqual(['running']);
    await ask(dest, (client) => client.request('destroy-vm', { vm: 'vm' }));
    await waitForThreads(pid(dest), idle.dest, 'the destination, the arrived VM destroyed');
  });

  it('a migration cancelled mid-round: the compress workers end, the VM runs on at the source', async () => {
    const { source, dest, idle, withVm } = await agentsWithVm();
    // 4 MB/s: round 0 takes seconds, time to cancel inside it.
    const report = await ask(source, async (client) => {
      const { id, report } = await startMigration(client, dest, 4e6);
      await midRoundWithWorkers(client, id, source, withVm);
      expect((await client.request('migrate-cancel', { migrationId: id })).cancelled).toBe(true);
      return report;
    });
    expectOutcome(report, 'cancelled');
    expect(report.vmRunsOn).toBe('source');
    expect(compressWorkersUsed(report), JSON.stringify(report.encodings)).toBeGreaterThan(0);
    expect(await vmStates(source)).toEqual(['running']);
    await waitForThreads(pid(source), withVm, 'the source after the cancel');
    // The destination built the VM's memory and vCPU, and a thread that pre-faulted it: all gone.
    await waitUntil(async () => (await vmStates(dest)).length === 0, { what: 'the destination discards its copy' });
    await waitForThreads(pid(dest), idle.dest, 'the destination after the cancel');
  });

  it('a migration whose destination is killed mid-round: the compress workers end, the VM runs on at the source', async () => {
    const { source, dest, withVm } = await agentsWithVm();
    const report = await ask(source, async (client) => {
      const { id, report } = await startMigration(client, dest, 4e6);
      await midRoundWithWorkers(client, id, source, withVm);
      dest.child.kill('SIGKILL');
      return report;
    });
    expectOutcome(report, 'failed');
    expect(report.vmRunsOn).toBe('source');
    expect(compressWorkersUsed(report), JSON.stringify(report.encodings)).toBeGreaterThan(0);
    expect(await vmStates(source)).toEqual(['running']);
    await waitForThreads(pid(source), withVm, 'the source after its destination died');
  });
});
