/**
 * A kv service inside the VM keeps its clients through a migration, on one machine without
 * privileges: the VM's address is a loopback ip:port that the source releases and the
 * destination binds. A probe client sends a PUT of a distinct key every millisecond while the
 * VM migrates (pre-copy and post-copy), then reads every acknowledged PUT back — from the same
 * address, now served by the destination. The agents speak mutual TLS and every migration has a
 * ticket (test/helpers/fleet.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ControlClient } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { networkSection, startProbe } from '../../cli/probe/during.ts';
import { followMigration } from '../../cli/follow-migration.ts';
import { runProbe } from '../../cli/probe/probe.ts';
import { useFleet } from '../helpers/fleet.ts';
import { runCli, stopAll } from '../helpers/processes.ts';
import { expectCompleted, expectOutcome } from '../helpers/report.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';
import { expectServedByDestination, freeUdpPort } from '../helpers/udp.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();
afterEach(stopAll);
// One pair of agents for the tests that only migrate a VM of their own (the one that kills an
// agent starts its own): each creates its VM on the source, destroyed on both after it.
const pair = useSharedPair({ start: () => fleet.pair(), ask: fleet.ask });

async function migrateKvVm(mode: 'precopy' | 'postcopy' | 'hybrid'): Promise<{
  report: MigrationReport;
  address: string;
  source: ControlClient;
  dest: ControlClient;
}> {
  const [sourceAgent, destAgent] = await pair.agents();
  const source = await fleet.connect(sourceAgent);
  const dest = await fleet.connect(destAgent);
  const address = `127.0.0.1:${await freeUdpPort()}`;
  const created = await source.request('create-vm', {
    name: 'kv1',
    memory: '64MiB',
    init: 'random',
    workload: 'kv',
    nic: address,
  });
  expect(created.nic).toMatchObject({ address, mode: 'loopback', taken: true });
  const [host, port] = address.split(':');
  const probe = startProbe({ target: { host: host!, port: Number(port) }, intervalMs: 1, tailMs: 300 });
  await probe.answered;
  const migrationId = await fleet.start(source, destAgent, { vm: 'kv1', mode });
  const report = await followMigration(source, migrationId, { progress: false });
  return {
    report: { ...report, network: networkSection(await probe.finish(), report) },
    address,
    source,
    dest,
  };
}

describe('network downtime on loopback (address rebind)', () => {
  it.each(['precopy', 'postcopy', 'hybrid'] as const)(
    '%s: the kv service keeps its address, no acknowledged write is lost, the gap is measured',
    async (mode) => {
      const { report, address, source, dest } = await migrateKvVm(mode);
      try {
        expectCompleted(report);
        expect(report.verify.match).toBe(true);
        const network = report.network!;
        expect(network.lostWrites).toBe(0);
        // The gap around the switchover is found on the client's timeline and is part of the longest.
        expect(network.switchoverGapMs).toBeGreaterThan(0);
        expect(network.switchoverGapMs).toBeLessThanOrEqual(network.downtimeMs);
        expect(network.addressMode).toBe('loopback');
        expect(network.requests).toBeGreaterThan(50);
        // A client saw a gap at least as long as the VM was stopped, within what the VM downtime
        // can be off by: it takes half the Handoff→Resumed round trip as Resumed's way back, and
        // a queue on the way out (round 0 still in flight) makes the way back the shorter half;
        // plus one probe interval. And the gap is finite: replies came back.
        const slack = (report.times.rttMs ?? 0) / 2 + network.intervalMs!;
        expect(network.downtimeMs).toBeGreaterThanOrEqual(report.times.downtimeMs! - slack);
        expect(network.downtimeMs).toBeLessThan(5000);
        console.log(
          `${mode}: VM downtime ${report.times.downtimeMs!.toFixed(1)} ms, network downtime ` +
            `${network.downtimeMs.toFixed(1)} ms (switchover gap ${network.switchoverGapMs?.toFixed(1)} ms), ` +
            `${network.lostReplies}/${network.requests} replies lost`,
        );

        // Afterwards the same address answers, and it is the destination's VM that answers.
        await expectServedByDestination('kv1', address, 'loopback', dest, source);
      } finally {
        source.close();
        dest.close();
      }
    },
  );
});

describe('livemig demo --workload kv --probe', () => {
  it('migrates a kv VM with a client attached: one JSON report with a network section, exit 0', async () => {
    const result = await runCli(['demo', '--workload', 'kv', '--probe', '--memory', '32MiB', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as MigrationReport;
    expectCompleted(report);
    expect(report.verify.match).toBe(true);
    expect(report.network).toMatchObject({ lostWrites: 0, addressMode: 'loopback', intervalMs: 1 });
    expect(report.network!.requests).toBeGreaterThan(50);
  });

  it('--probe without a service to probe is refused: exit 2', async () => {
    const result = await runCli(['demo', '--probe', '--memory', '32MiB']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--workload kv');
  });
});

describe('livemig migrate --probe', () => {
  it("probes the VM's own address (from query-vms) and puts what it saw in the JSON report", async () => {
    const [sourceAgent, destAgent] = await pair.agents();
    const source = await fleet.connect(sourceAgent);
    const address = `127.0.0.1:${await freeUdpPort()}`;
    try {
      await source.request('create-vm', { name: 'kv1', memory: '32MiB', workload: 'kv', nic: address });
    } finally {
      source.close();
    }
    const result = await fleet.cli([
      ...['migrate', '--control', sourceAgent.control, '--vm', 'kv1', '--to', destAgent.listen],
      ...['--dest-control', destAgent.control, '--probe', '--probe-interval', '2ms', '--json'],
    ]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as MigrationReport;
    expectCompleted(report);
    expect(report.network).toMatchObject({ address, addressMode: 'loopback', lostWrites: 0, intervalMs: 2 });
  });

  it('--probe on a VM without a NIC is refused before anything moves: exit 2', async () => {
    const [sourceAgent, destAgent] = await pair.agents();
    const source = await fleet.connect(sourceAgent);
    try {
      await source.request('create-vm', { name: 'plain', memory: '8MiB' });
      const result = await fleet.cli([
        ...['migrate', '--control', sourceAgent.control, '--vm', 'plain', '--to', destAgent.listen, '--probe'],
        ...['--dest-control', destAgent.control],
      ]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('has no NIC');
      const { vms } = await source.request('query-vms', {});
      expect(vms).toEqual([expect.objectContaining({ name: 'plain', state: 'running' })]);
    } finally {
      source.close();
    }
  });
});

describe('a kv VM whose migration fails keeps its address on the source', () => {
  it('SIGKILL of the destination mid-round: the service never moves, no acknowledged write is lost', async () => {
    const [destAgent, sourceAgent] = await Promise.all([fleet.agent(), fleet.agent()]);
    const source = await fleet.connect(sourceAgent);
    try {
      const address = `127.0.0.1:${await freeUdpPort()}`;
      await source.request('create-vm', {
        name: 'kv1',
        memory: '64MiB',
        init: 'random',
        workload: 'kv',
        nic: address,
      });
      const [host, port] = address.split(':');
      const probe = startProbe({ target: { host: host!, port: Number(port) }, intervalMs: 1, tailMs: 300 });
      await probe.answered;
      // Slow enough that the kill lands in round 0 (64 MiB at 25 MB/s: ~2.7 s, the kill comes after 8 MiB).
      const params = { maxBandwidthBps: 25_000_000 };
      const migrationId = await fleet.start(source, destAgent, { vm: 'kv1', params });
      await waitUntil(
        async () => {
          const info = await source.request('query-migrate', { migrationId });
          return info?.direction === 'outgoing' && info.transferred >= 8 << 20;
        },
        { what: 'the migration to have sent 8 MiB' },
      );
      destAgent.child.kill('SIGKILL');
      const report = await followMigration(source, migrationId, { progress: false });
      const network = networkSection(await probe.finish(), report);
      expectOutcome(report, 'failed');
      expect(report.vmRunsOn).toBe('source');
      expect(network.lostWrites).toBe(0);
      const [vm] = (await source.request('query-vms', {})).vms;
      expect(vm).toMatchObject({ name: 'kv1', state: 'running', nic: { address, taken: true } });
      const after = await runProbe({ target: { host: host!, port: Number(port) }, intervalMs: 2, durationMs: 200 });
      expect(after.replies).toBeGreaterThan(0);
    } finally {
      source.close();
    }
  });
});
