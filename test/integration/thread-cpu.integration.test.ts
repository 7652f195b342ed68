/**
 * Where the cores went (issue 18): a migration between two real agent processes reports each
 * side's threads with the CPU time each used during the migration, read from Linux's per-thread
 * schedstat. A busy guest (a hot set written as fast as the vCPU can) makes the vCPU worker the
 * thread to watch: its CPU time must be real (> 0) and physically possible (≤ its wall time, 5 %
 * for the readings' granularity); the main threads worked (> 0); and the destination's figures
 * came across in its final statistics — Resumed after pre-copy (with the pre-fault's), Complete
 * after post-copy — passed the source's checks and are in the report, which the schema accepts.
 * One pair of agents (role agent: both ways) serves both: pre-copy there, post-copy back.
 */
import { Ajv } from 'ajv';
import { afterEach, describe, expect, it } from 'vitest';
import { formatReport, REPORT_JSON_SCHEMA, type MigrationReport, type SideThreads } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { ask } from '../helpers/plain-agents.ts';
import { startAgent, stopAll, vmArgs, type AgentProcess } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';

afterEach(stopAll);

/** 32 MiB, a 2 MiB hot set written at full speed (rate 0): the vCPU worker is busy the whole time. */
const spec = parseVmSpec({ memory: '32MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=0', seed: 18 });
const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);

function threadOf(side: SideThreads, name: string) {
  const thread = side.threads.find((t) => t.name === name);
  expect(thread, `no ${name} thread in ${JSON.stringify(side.threads)}`).toBeDefined();
  return thread!;
}

/** A vCPU thread's figures are real and possible: it ran, and never more than it was alive. */
function expectBusyVcpu(side: SideThreads): void {
  const vcpu = threadOf(side, 'vcpu');
  expect(vcpu.cpuMs).toBeGreaterThan(0);
  expect(vcpu.cpuMs!).toBeLessThanOrEqual(vcpu.wallMs * 1.05);
}

async function migrate(from: AgentProcess, to: AgentProcess, mode: 'precopy' | 'postcopy'): Promise<MigrationReport> {
  const report = await ask(from, async (client) => {
    const { migrationId } = await client.request('migrate', {
      vm: 'vm',
      to: to.listen,
      mode,
      params: { maxRounds: 4, downtimeLimitMs: 300 },
    });
    return followMigration(client, migrationId, { progress: false });
  });
  expectCompleted(report, mode);
  expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
  expect(report.threads, 'no threads section').toBeDefined();
  expect(report.threads!.dest, 'the destination sent no thread figures').not.toBeNull();
  return report;
}

describe.runIf(process.platform === 'linux')('CPU time per thread in the report', () => {
  it('a busy VM migrated by pre-copy and back by post-copy: vCPUs, main threads, the destination’s figures', async () => {
    const [a, b] = await Promise.all([startAgent('agent', vmArgs('vm', spec)), startAgent('agent')]);

    const precopy = await migrate(a, b, 'precopy');
    const { source, dest } = precopy.threads!;
    expectBusyVcpu(source);
    expect(threadOf(source, 'main').cpuMs).toBeGreaterThan(0);
    // The destination's Setup → Ready: its main thread received every page; its vCPU was started.
    expect(threadOf(dest!, 'main').cpuMs).toBeGreaterThan(0);
    expect(threadOf(dest!, 'vcpu').wallMs).toBeGreaterThan(0);
    expect(dest!.wallMs).toBeLessThanOrEqual(precopy.times.totalMs);
    // The pre-fault ran (the source sends a page bitmap) and the report says how long it took.
    const prefault = precopy.prefault;
    expect(prefault, 'no prefault section').toBeDefined();
    expect(prefault!.pages).toBeGreaterThan(0);
    expect(prefault!.firstPassMs).not.toBeNull();
    if (prefault!.ms !== null) expect(prefault!.touched).toBe(prefault!.pages);
    const text = formatReport(precopy);
    expect(text).toMatch(/source threads {5}main [\d.]+ m?s .*vcpu [\d.]+ m?s/);
    expect(text).toMatch(/dest threads {7}main /);
    expect(text).toMatch(/pre-fault {10}\d+ of \d+ pages/);

    // Back by post-copy: the guest runs on the destination from the handoff, on its vCPU worker.
    const postcopy = await migrate(b, a, 'postcopy');
    expectBusyVcpu(postcopy.threads!.dest!);
    expect(threadOf(postcopy.threads!.dest!, 'main').cpuMs).toBeGreaterThan(0);
    expect(threadOf(postcopy.threads!.source, 'main').cpuMs).toBeGreaterThan(0);
    // The destination's fault thread (it owns the fault channel) is counted as itself, not in `other`.
    expect(threadOf(postcopy.threads!.dest!, 'fault').cpuMs).toBeGreaterThan(0);
  });
});
