/**
 * The migration engine's promises that no other suite pins down, with real agent processes:
 * verification covers CPU and device state (a register changed in transit fails the migration
 * before the destination runs the VM, which keeps running on the source, intact); a migration
 * that failed before anything moved has no downtime and no digests (null, with the reason) —
 * never "0 µs" and "MISMATCH" of two empty strings; SIGTERM names itself as the switchover
 * reason; migrate-start-postcopy acts mid-round.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ControlClient } from '@livemig/shared/control';
import { MsgType } from '@livemig/shared/protocol';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { checkOracle } from '../../cli/oracle.ts';
import { startAgent, startSourceWithVm, stopAll, type AgentProcess } from '../helpers/processes.ts';
import { expectCompleted, expectOutcome } from '../helpers/report.ts';
import { ask } from '../helpers/plain-agents.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';
import { startRewritingRelay } from '../helpers/rewriting-relay.ts';

afterEach(stopAll);
// One plaintext pair for the tests that need nothing else of their agents: each boots VM `vm` on
// the source, destroyed on both after it (test/helpers/shared-pair.ts).
const pair = useSharedPair({
  start: () => Promise.all([startAgent('source', [], { kept: true }), startAgent('dest', [], { kept: true })]),
  ask,
});

async function migrate(
  source: AgentProcess,
  to: string,
  params: Record<string, unknown> = {},
  mode?: 'precopy' | 'postcopy' | 'hybrid',
): Promise<MigrationReport> {
  const client = await ControlClient.connect(source.control);
  try {
    const { migrationId } = await client.request('migrate', { vm: 'vm', to, params, ...(mode ? { mode } : {}) });
    return await followMigration(client, migrationId, { progress: false });
  } finally {
    client.close();
  }
}

async function vmStates(agent: AgentProcess): Promise<string[]> {
  const client = await ControlClient.connect(agent.control);
  try {
    return (await client.request('query-vms', {})).vms.map((v) => v.state);
  } finally {
    client.close();
  }
}

function hostPort(address: string): { host: string; port: number } {
  const [host, port] = address.split(':') as [string, string];
  return { host, port: Number(port) };
}

describe.each(['precopy', 'postcopy'] as const)('verification covers CPU state (%s)', (mode) => {
  it('a register changed in transit fails the migration; the VM keeps running on the source, intact', async () => {
    const spec = parseVmSpec({ memory: '16MiB', init: 'random', workload: 'uniform:rate=5000', seed: 8 });
    const [source, dest] = await pair.boot('vm', spec);
    const relay = await startRewritingRelay(hostPort(dest.listen), (message) => {
      if (message.type !== MsgType.CpuState) return message;
      const registers = Uint8Array.from(message.registers);
      registers[registers.length - 1]! ^= 0x01; // one bit of the last register
      return { ...message, registers };
    });
    try {
      const report = await migrate(source, relay.address, {}, mode);
      expect(relay.rewritten).toBe(1);
      expectOutcome(report, 'failed');
      expect(report.error?.code).toBe('ERR_DIGEST_MISMATCH');
      expect(report.error?.message).toMatch(/cpu/);
      expect(report.vmRunsOn).toBe('source');
      // The destination found it and refused (its Error frame carries the code); the source never
      // got a digest back to compare, so its own verdict is "not compared", not a fake mismatch.
      expect(report.verify.match).toBeNull();
      expect(report.verify.sections?.cpu?.source).toMatch(/^[0-9a-f]{64}$/);
      expect(report.verify.sections?.cpu?.dest).toBeNull();
      expect(await vmStates(source)).toEqual(['running']);
      expect(await vmStates(dest)).toEqual([]);
      const oracle = await checkOracle(source.control, 'vm', spec);
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    } finally {
      await relay.close();
    }
  });
});

describe('reports that tell what happened', () => {
  it('a migration that failed before any page moved says so: no downtime, nothing verified (null, with why)', async () => {
    const spec = parseVmSpec({ memory: '8MiB', init: 'random', workload: 'idle', seed: 2 });
    const [source] = await pair.boot('vm', spec);
    // A port nothing listens on: the connection is refused before Setup.
    const report = await migrate(source, '127.0.0.1:9');
    expectOutcome(report, 'failed');
    expect(report.error?.code).toBe('ERR_CONNECTION');
    expect(report.times.downtimeMs).toBeNull();
    expect(report.times.downtimeNote).toMatch(/never paused/);
    expect(report.verify).toMatchObject({ sourceDigest: null, destDigest: null, match: null });
    expect(await vmStates(source)).toEqual(['running']);
  });

  it('a hybrid that converges finishes as pre-copy: nothing left absent, no post-copy section', async () => {
    const spec = parseVmSpec({ memory: '16MiB', init: 'random', workload: 'idle', seed: 4 });
    const [source, dest] = await pair.boot('vm', spec);
    const report = await migrate(source, dest.listen, {}, 'hybrid');
    expectCompleted(report);
    expect(report.mode).toBe('hybrid');
    expect(['nothing-dirty', 'converged']).toContain(report.switchover?.reason);
    expect(report.postcopy).toBeUndefined();
    expect(report.verify.match).toBe(true);
    const oracle = await checkOracle(dest.control, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  it('a completed migration verifies every section, each side with its own digest', async () => {
    const spec = parseVmSpec({ memory: '8MiB', init: 'random', workload: 'uniform:rate=5000', seed: 3 });
    const [source, dest] = await pair.boot('vm', spec);
    const report = await migrate(source, dest.listen);
    expectCompleted(report);
    expect(Object.keys(report.verify.sections ?? {}).sort()).toEqual(['cpu', 'devices', 'ram']);
    for (const section of Object.values(report.verify.sections!)) {
      expect(section.match).toBe(true);
      expect(section.source).toMatch(/^[0-9a-f]{16,64}$/);
    }
  });
});

describe('capability negotiation decides (a feature not negotiated is not used)', () => {
  it('post-copy to a destination that does not offer it is refused at setup; the VM keeps running here', async () => {
    const spec = parseVmSpec({ memory: '8MiB', init: 'random', workload: 'uniform:rate=5000', seed: 5 });
    const [source, dest] = await Promise.all([
      startSourceWithVm('vm', spec),
      startAgent('dest', ['--capabilities', 'setup-bitmap,zero-pages']),
    ]);
    for (const mode of ['postcopy', 'hybrid'] as const) {
      const report = await migrate(source, dest.listen, {}, mode);
      expectOutcome(report, 'failed');
      expect(report.error?.code).toBe('ERR_UNSUPPORTED');
      expect(report.error?.message).toMatch(/postcopy, fault-channel/);
      expect(report.bytes.pagePayload).toBe(0);
      expect(await vmStates(source)).toEqual(['running']);
      expect(await vmStates(dest)).toEqual([]);
    }
  });

  it('a source that offers less is held to it too: pre-copy with no capabilities at all still arrives intact', async () => {
    const spec = parseVmSpec({ memory: '8MiB', init: 'mixed:0.5', workload: 'uniform:rate=5000', seed: 6 });
    const source = await startAgent('source', [
      '--capabilities',
      '',
      '--vm',
      'vm',
      '--memory',
      String(spec.memoryBytes),
      '--init',
      spec.init,
      '--workload',
      spec.workload,
      '--seed',
      String(spec.seed),
    ]);
    const dest = await startAgent('dest');
    expect((await migrate(source, dest.listen, {}, 'postcopy')).error?.code).toBe('ERR_UNSUPPORTED');
    const report = await migrate(source, dest.listen);
    expectCompleted(report);
    // No zero records without `zero-pages`: every page sent carried its bytes.
    expect(report.bytes.pagePayload).toBe(report.pages.sent * report.vm.pageSize);
    const oracle = await checkOracle(dest.control, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });
});
