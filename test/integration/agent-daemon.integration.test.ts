/**
 * The agent daemon in this process (two of them, on loopback): a VM that left an agent keeps
 * only its record there. After a completed migration out — of a VM booted there, and of one that
 * had arrived by migration — nothing of the agent (migration table, closures, incoming
 * migrations, data connections) keeps the VM or its guest memory alive: both are garbage
 * collected. Also: a VM still arriving by post-copy cannot leave yet; an agent without a data port
 * migrates out but accepts nothing. Both agents speak mutual TLS, and every migration has a ticket
 * (test/helpers/fleet.ts): the TLS sockets must not keep a VM alive either.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentDaemon } from '@livemig/agent';
import type { MigrationMode, MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { useFleet, type FleetDaemon } from '../helpers/fleet.ts';
import { expectCompleted } from '../helpers/report.ts';
import { waitUntil } from '../helpers/wait.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const spec = parseVmSpec({ memory: '16MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 4 });

const fleet = useFleet();
const daemons: AgentDaemon[] = [];
afterEach(async () => {
  await Promise.all(daemons.splice(0).map((daemon) => daemon.stop('test over')));
});

async function startDaemon(listen = true, metrics = false): Promise<FleetDaemon> {
  const daemon = await fleet.daemon({ listen, metrics });
  daemons.push(daemon);
  return daemon;
}

function migrate(from: FleetDaemon, to: FleetDaemon, mode: MigrationMode): Promise<MigrationReport> {
  return fleet.migrate(from, to, { vm: 'vm', mode });
}

/** Weak references to the VM `daemon` hosts now and to its guest memory (none kept strongly here). */
function weakVm(daemon: AgentDaemon): Array<WeakRef<object>> {
  const { vm } = daemon.host.get('vm');
  return [new WeakRef(vm), new WeakRef(vm.memory)];
}

/**
 * True once every reference is collected; false if any is still alive after 10 s of collections.
 * The agent lets go of a VM in stages once it left (the migration's record replaces it, the vCPU
 * worker terminates, the connections close), and on a loaded machine that takes a while: keep
 * collecting until it is gone, so the answer waits on what is observed, not on a fixed window.
 */
async function collected(refs: ReadonlyArray<WeakRef<object>>): Promise<boolean> {
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline) {
    // A WeakRef keeps its target for the rest of the job that read it: collect in a new job.
    await sleep(20);
    gc();
    if (refs.every((ref) => ref.deref() === undefined)) return true;
  }
  return false;
}

describe('a VM that left an agent keeps only its record', () => {
  // With Prometheus metrics on: they count the data connections' bytes and harvest running VMs'
  // dirty logs, and must not keep a VM that left either.
  it.each(['precopy', 'postcopy'] as const)('%s: nothing keeps the VM alive on the agents it left', async (mode) => {
    const [a, b] = await Promise.all([startDaemon(true, true), startDaemon(true, true)]);
    await a.host.create('vm', spec);

    const onA = weakVm(a);
    const there = await migrate(a, b, mode);
    expectCompleted(there);
    expect(await fetch(a.metricsUrl!).then((scrape) => scrape.text())).toContain('livemig_migrations_total');
    await waitUntil(() => a.host.list()[0]?.state === 'migrated', { what: 'A retires the VM' });
    expect(await collected(onA), 'the VM booted on A is collected once it left A').toBe(true);
    expect(a.migrationInfos()[0]?.status).toBe('completed');

    const onB = weakVm(b);
    const back = await migrate(b, a, mode);
    expectCompleted(back);
    await waitUntil(() => b.host.list()[0]?.state === 'migrated', { what: 'B retires the VM' });
    expect(await collected(onB), 'the VM that arrived on B is collected once it left B').toBe(true);
    expect(a.host.get('vm').state).toBe('running');
  });
});

describe('a VM still arriving cannot leave', () => {
  it('refuses to migrate a VM on while its post-copy is still fetching pages, and migrates it once complete', async () => {
    const [a, b] = await Promise.all([startDaemon(), startDaemon()]);
    await a.host.create('vm', spec);
    const client = await fleet.connect(a, 'operator');
    try {
      // 16 MiB at 4 MB/s: seconds of post-copy push with the VM already running on B.
      const params = { maxBandwidthBps: 4e6 };
      const migrationId = await fleet.start(client, b, { vm: 'vm', mode: 'postcopy', params });
      const there = followMigration(client, migrationId, { progress: false });
      await waitUntil(() => b.host.list()[0]?.state === 'running', { what: 'the VM runs on B' });
      expect(() => b.migrate('vm', a.dataAddress!)).toThrow(
        expect.objectContaining({ code: 'ERR_BUSY', message: expect.stringMatching(/pages are still on the source/) }),
      );
      expectCompleted(await there);
    } finally {
      client.close();
    }
    const back = await migrate(b, a, 'precopy');
    expectCompleted(back);
  });
});

describe('an agent without a data port', () => {
  it('migrates VMs out but has no address to migrate to', async () => {
    const [a, b] = await Promise.all([startDaemon(false), startDaemon()]);
    expect(a.dataAddress).toBeUndefined();
    await a.host.create('vm', spec);
    const report = await migrate(a, b, 'precopy');
    expectCompleted(report);
    expect(b.host.get('vm').state).toBe('running');
  });
});
