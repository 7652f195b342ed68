/**
 * Pre-copy migration end to end, with real agent processes on loopback: every workload
 * arrives intact (digest + determinism oracle after it ran on at the destination), a VM that
 * cannot converge still arrives, and every failure in ARCHITECTURE.md §7 leaves the VM
 * running on exactly one side with all its memory, with the surviving agent serving the next
 * migration. Every migration runs over mutual TLS with a ticket (test/helpers/fleet.ts), except
 * in the tests about the plaintext protocol itself.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import type { ControlClient } from '@livemig/shared/control';
import { REPORT_JSON_SCHEMA, type MigrationReport } from '@livemig/shared/report';
import { parseVmSpec } from '@livemig/shared/vm';
import { MsgType } from '@livemig/shared/protocol';
import { startCuttingRelay } from '../helpers/cutting-relay.ts';
import { useFleet } from '../helpers/fleet.ts';
import { runCli, startAgent, startSourceWithVm, stopAll } from '../helpers/processes.ts';
import { expectCompleted, expectOutcome } from '../helpers/report.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();
afterEach(stopAll);

const WORKLOADS = ['idle', 'uniform:rate=20000', 'hotset:wss=4MiB,rate=20000', 'sweep:rate=20000', 'ab:rate=20000'];

/** Wait until the migration has put at least `bytes` on the wire (mid-round 0). */
async function sentAtLeast(client: ControlClient, migrationId: string, bytes: number): Promise<void> {
  await waitUntil(
    async () => {
      const info = await client.request('query-migrate', { migrationId });
      return info?.direction === 'outgoing' && info.status === 'precopy' && info.transferred >= bytes;
    },
    { what: `${bytes} bytes sent in pre-copy` },
  );
}

// One pair of agents for the tests that neither kill an agent nor need flags of their own: each
// boots its VM on the source, and it is destroyed on both after it.
const pair = useSharedPair({ start: () => fleet.pair(), ask: fleet.ask });

describe('pre-copy migration between real agents', () => {
  it.each(WORKLOADS)('migrates a VM running %s; digests match and the oracle holds after it ran on', async (w) => {
    const spec = parseVmSpec({ memory: '32MiB', init: 'mixed:0.5', workload: w, seed: 11 });
    const [source, dest] = await pair.boot('vm1', spec);
    const report = await fleet.migrate(source, dest, { vm: 'vm1' });
    expectCompleted(report);
    expect(report.verify.match).toBe(true);
    expect(report.verify.sourceDigest).toBe(report.verify.destDigest);
    expect(report.rounds.length).toBeGreaterThanOrEqual(2);
    expect(report.times.downtimeMs).toBeGreaterThan(0);
    // The source hands the VM over and keeps it paused as "migrated"; the destination runs it.
    expect((await fleet.vms(source)).map((v) => v.state)).toEqual(['migrated']);
    const [arrived] = await fleet.vms(dest);
    expect(arrived?.state).toBe('running');
    // Let it run on at the destination, then compare with a never-migrated reference.
    await waitUntil(async () => ((await fleet.vms(dest))[0]?.steps ?? 0) > (arrived?.steps ?? 0) || w === 'idle', {
      what: 'the VM makes progress at the destination',
    });
    const oracle = await fleet.oracle(dest, 'vm1', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  it('a dirty rate above the capped bandwidth does not converge: the report names the rule, the VM still arrives intact', async () => {
    // An unthrottled guest (rate=0: as fast as it runs) dirties far more than 20 MB/s: every round
    // resends about all of its 8 MiB (~0.4 s each), and the stop-and-copy would take ~400 ms.
    const spec = parseVmSpec({ memory: '8MiB', init: 'random', workload: 'uniform:rate=0', seed: 5 });
    const [source, dest] = await pair.boot('busy', spec);
    const params = { maxBandwidthBps: 20e6, maxRounds: 5, downtimeLimitMs: 10 };
    const report = await fleet.migrate(source, dest, { vm: 'busy', params });
    expectCompleted(report);
    expect(['max-rounds', 'not-shrinking']).toContain(report.switchover?.reason);
    expect(report.switchover?.expectedDowntimeMs).toBeGreaterThan(10);
    expect(report.verify.match).toBe(true);
    const oracle = await fleet.oracle(dest, 'busy', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });
});

describe('failures leave the VM on exactly one side, intact', () => {
  const spec = parseVmSpec({ memory: '64MiB', init: 'random', workload: 'hotset:wss=2MiB,rate=5000', seed: 3 });
  /** Slow enough (8 MB/s for 64 MiB) that "mid-round" is a wide window. */
  const slow = { maxBandwidthBps: 8e6 };

  it('cancel mid-round: the VM keeps running on the source, the destination discards its copy', async () => {
    const [source, dest] = await pair.boot('vm', spec);
    const report = await fleet.migrate(source, dest, { vm: 'vm', params: slow }, async (client, id) => {
      await sentAtLeast(client, id, 2 << 20);
      expect(await client.request('migrate-cancel', { migrationId: id })).toEqual({ cancelled: true });
    });
    expectOutcome(report, 'cancelled');
    expect(report.error?.code).toBe('ERR_CANCELLED');
    expect(report.vmRunsOn).toBe('source');
    // The channel still worked: the destination countersigned the record of the cancellation.
    expect(report.record?.record).toMatchObject({ outcome: 'cancelled', error: 'ERR_CANCELLED' });
    expect(report.record?.countersignature).toMatchObject({
      status: 'signed',
      signature: { by: report.record?.record.dest?.name },
    });
    const before = (await fleet.vms(source))[0]!;
    expect(before.state).toBe('running');
    await waitUntil(async () => ((await fleet.vms(source))[0]?.steps ?? 0) > before.steps, { what: 'the VM runs on' });
    await waitUntil(async () => (await fleet.vms(dest)).length === 0, { what: 'the destination discards its copy' });
    const oracle = await fleet.oracle(source, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  it('SIGKILL of the destination mid-round: the VM keeps running on the source, which serves the next migration', async () => {
    const [source, dest] = await Promise.all([fleet.source('vm', spec), fleet.agent()]);
    const report = await fleet.migrate(source, dest, { vm: 'vm', params: slow }, async (client, id) => {
      await sentAtLeast(client, id, 2 << 20);
      dest.child.kill('SIGKILL');
    });
    expectOutcome(report, 'failed');
    expect(report.error?.code).toMatch(/^ERR_(CONNECTION|PEER_ABORTED)$/);
    expect(report.vmRunsOn).toBe('source');
    expect((await fleet.vms(source))[0]?.state).toBe('running');
    // The surviving source migrates the same VM to a fresh destination.
    const dest2 = await fleet.agent();
    const again = await fleet.migrate(source, dest2, { vm: 'vm' });
    expectCompleted(again);
    const oracle = await fleet.oracle(dest2, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  it('SIGKILL of the source mid-round: the destination frees the half-built VM and serves the next migration', async () => {
    const [source, dest] = await Promise.all([fleet.source('vm', spec), fleet.agent()]);
    const client = await fleet.connect(source, 'operator');
    const migrationId = await fleet.start(client, dest, { vm: 'vm', params: slow });
    await sentAtLeast(client, migrationId, 2 << 20);
    expect((await fleet.vms(dest)).map((v) => v.state)).toEqual(['incoming']);
    source.child.kill('SIGKILL');
    client.close();
    await waitUntil(async () => (await fleet.vms(dest)).length === 0, {
      what: 'the destination frees the half-built VM',
    });
    const source2 = await fleet.source('vm', spec);
    const report = await fleet.migrate(source2, dest, { vm: 'vm' });
    expectCompleted(report);
    const oracle = await fleet.oracle(dest, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  it('SIGTERM of the destination mid-round: it aborts cleanly and the VM keeps running on the source', async () => {
    const [source, dest] = await Promise.all([fleet.source('vm', spec), fleet.agent()]);
    const report = await fleet.migrate(source, dest, { vm: 'vm', params: slow }, async (client, id) => {
      await sentAtLeast(client, id, 2 << 20);
      dest.child.kill('SIGTERM');
    });
    expectOutcome(report, 'failed');
    expect(report.error?.code).toBe('ERR_PEER_ABORTED');
    expect(report.error?.message).toMatch(/shutting down/);
    expect(await dest.exited).toEqual({ code: 0, signal: null });
    expect((await fleet.vms(source))[0]?.state).toBe('running');
    const oracle = await fleet.oracle(source, 'vm', spec);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  it('SIGTERM of the source mid-round: it switches over and finishes, so the VM ends up running on the destination', async () => {
    const small = parseVmSpec({ memory: '16MiB', init: 'random', workload: 'hotset:wss=1MiB,rate=5000', seed: 4 });
    const [source, dest] = await Promise.all([fleet.source('vm', small), fleet.agent()]);
    const report = await fleet.migrate(
      source,
      dest,
      { vm: 'vm', params: { maxBandwidthBps: 4e6 } },
      async (client, id) => {
        await sentAtLeast(client, id, 1 << 20);
        source.child.kill('SIGTERM');
      },
    );
    expectCompleted(report);
    // It switched over at once, mid-round 0, and says why: not "max-rounds".
    expect(report.switchover?.reason).toBe('shutdown');
    expect(report.rounds.length).toBeLessThanOrEqual(2);
    expect(await source.exited).toEqual({ code: 0, signal: null });
    expect((await fleet.vms(dest)).map((v) => v.state)).toEqual(['running']);
    const oracle = await fleet.oracle(dest, 'vm', small);
    expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
  });

  // Plaintext: garbage where livemig frames belong (over TLS it would fail the handshake: peer-channel-tls.test.ts).
  it('a fake peer sending garbage gets a typed error; the destination keeps serving', async () => {
    const dest = await startAgent('dest');
    const [host, port] = dest.listen.split(':') as [string, string];
    const closed = await new Promise<string>((resolve, reject) => {
      const socket = net.connect({ host, port: Number(port) }, () =>
        socket.write(Buffer.from('GET / HTTP/1.1\r\n\r\n')),
      );
      let received = '';
      socket.on('data', (chunk) => (received += chunk.toString('latin1')));
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
    });
    // The destination answered with an Error frame naming the code, then closed.
    expect(closed).toContain('ERR_BAD_MAGIC');
    const spec2 = parseVmSpec({ memory: '8MiB', init: 'random', workload: 'idle', seed: 1 });
    const source = await startSourceWithVm('after', spec2);
    const report = await fleet.migrate(source, dest, { vm: 'after' });
    expectCompleted(report);
  });

  // Plaintext: garbage where livemig frames belong (over TLS it would fail the handshake: peer-channel-tls.test.ts).
  it('a fake destination sending garbage fails the migration with a typed error; the VM keeps running', async () => {
    const fake = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.write(Buffer.alloc(64, 0x41));
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    try {
      const port = (fake.address() as net.AddressInfo).port;
      const spec2 = parseVmSpec({ memory: '8MiB', init: 'random', workload: 'uniform:rate=1000', seed: 2 });
      const source = await startSourceWithVm('vm', spec2);
      const report = await fleet.migrate(source, `127.0.0.1:${port}`, { vm: 'vm' });
      expectOutcome(report, 'failed');
      expect(report.error?.code).toBe('ERR_BAD_MAGIC');
      expect((await fleet.vms(source))[0]?.state).toBe('running');
      const oracle = await fleet.oracle(source, 'vm', spec2);
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    } finally {
      fake.close();
    }
  });
});

// Plaintext: the relay decodes livemig frames in flight to cut the link at an exact protocol moment.
describe('exactly one owner around the handoff (link cut by a relay at an exact frame)', () => {
  const spec = parseVmSpec({ memory: '8MiB', init: 'random', workload: 'uniform:rate=2000', seed: 8 });

  it('link cut after Ready, before Handoff: the source still owns the VM and resumes it; the destination discards its copy', async () => {
    const [source, dest] = await Promise.all([startSourceWithVm('vm', spec), startAgent('dest')]);
    const [host, port] = dest.listen.split(':') as [string, string];
    const relay = await startCuttingRelay({ host, port: Number(port) }, (direction, message) =>
      direction === 'to-source' && message.type === MsgType.Ready ? 'cut-before' : 'forward',
    );
    try {
      const report = await fleet.migrate(source, relay.address, { vm: 'vm' });
      expect(await Promise.race([relay.cut, 'no cut happened'])).toBe('cut-before Ready to-source');
      expect(relay.seen['to-dest']).not.toContain('Handoff');
      expectOutcome(report, 'failed');
      expect(report.vmRunsOn).toBe('source');
      expect((await fleet.vms(source))[0]?.state).toBe('running');
      await waitUntil(async () => (await fleet.vms(dest)).length === 0, { what: 'the destination discards its copy' });
      const oracle = await fleet.oracle(source, 'vm', spec);
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    } finally {
      await relay.close();
    }
  });

  it('link cut after Handoff, before Resumed returns: the VM runs on the destination only; the source keeps it paused and refuses cont', async () => {
    const [source, dest] = await Promise.all([startSourceWithVm('vm', spec), startAgent('dest')]);
    const [host, port] = dest.listen.split(':') as [string, string];
    const relay = await startCuttingRelay({ host, port: Number(port) }, (direction, message) =>
      direction === 'to-source' && message.type === MsgType.Resumed ? 'cut-before' : 'forward',
    );
    try {
      const report = await fleet.migrate(source, relay.address, { vm: 'vm' });
      expect(await Promise.race([relay.cut, 'no cut happened'])).toBe('cut-before Resumed to-source');
      expectOutcome(report, 'failed');
      expect(report.vmRunsOn).toBe('paused-on-source');
      // Never two running copies: the destination runs it, the source holds it paused.
      expect((await fleet.vms(dest))[0]?.state).toBe('running');
      expect((await fleet.vms(source))[0]?.state).toBe('migrated');
      const refused = await runCli(['cont', '--control', source.control, '--vm', 'vm']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/ERR_VM_STATE.*two copies/);
      const oracle = await fleet.oracle(dest, 'vm', spec);
      expect(oracle.migratedDigest).toBe(oracle.referenceDigest);
    } finally {
      await relay.close();
    }
  });
});

describe('livemig status', () => {
  it('lists the VMs of an agent with --json, and a table without', async () => {
    const spec = parseVmSpec({ memory: '8MiB', init: 'zero', workload: 'idle', seed: 1 });
    const [source] = await pair.boot('listed', spec);
    const json = await fleet.cli(['status', '--control', source.control, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const parsed = JSON.parse(json.stdout) as { vms: Array<{ name: string; state: string; memoryBytes: number }> };
    expect(parsed.vms).toEqual([expect.objectContaining({ name: 'listed', state: 'running', memoryBytes: 8 << 20 })]);
    const table = await fleet.cli(['status', '--control', source.control]);
    expect(table.stdout).toMatch(/listed\s+running/);
  });

  it('says clearly when the agent cannot be reached', async () => {
    const result = await fleet.cli(['status', '--control', 'wss://127.0.0.1:1']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/ERR_CONNECTION: cannot reach agent/);
  });
});

describe('livemig migrate --json', () => {
  it('prints exactly one report object that validates against the published schema', async () => {
    const spec = parseVmSpec({ memory: '16MiB', init: 'random', workload: 'hotset:wss=1MiB,rate=5000', seed: 9 });
    const [source, dest] = await pair.boot('vm', spec);
    // --dest-control: the CLI gets the ticket (and the destination's name) from the destination.
    const result = await fleet.cli([
      ...['migrate', '--control', source.control, '--vm', 'vm', '--to', dest.listen, '--json'],
      ...['--dest-control', dest.control],
    ]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const report = JSON.parse(lines[0]!) as MigrationReport;
    const validate = new Ajv({ strict: false }).compile(REPORT_JSON_SCHEMA);
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expectCompleted(report);
    // Which migration, between whom, when: the agents' certificate names, the source's clock.
    expect(report.migrationId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(report.record?.record.migrationId).toBe(report.migrationId);
    expect(report.agents).toEqual({ source: source.name, dest: dest.name });
    const span = Date.parse(report.times.endedAt) - Date.parse(report.times.startedAt);
    expect(Math.abs(span - report.times.totalMs)).toBeLessThan(50);
  });

  it('rejects bad flags with exit status 2 and the reason', async () => {
    const result = await runCli(['migrate', '--vm', 'x', '--to', 'nowhere', '--json']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--to|HOST:PORT/);
    const bandwidth = await runCli(['migrate', '--vm', 'x', '--to', '127.0.0.1:1', '--max-bandwidth', 'fast']);
    expect(bandwidth.code).toBe(2);
    expect(bandwidth.stderr).toMatch(/rate/);
  });
});
