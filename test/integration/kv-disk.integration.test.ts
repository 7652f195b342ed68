/**
 * kv with a disk in a real agent (issue 15): `livemig agent --vm kv1 --workload kv --nic ADDR
 * --disk 16MiB` runs the service with its write-ahead log on the VM's disk image. A client in
 * this process PUTs one key at a time and, the moment each reply arrives, reads the image file
 * the agent writes (another process's file, through the page cache) and finds the PUT's log
 * record there: a write is acknowledged only once its record is in the image. Then the probe
 * PUTs a distinct key every 2 ms and reads every acknowledged one back (`lostWrites: 0`), and
 * the image holds one well-formed record per logged request, in sequence, with the probe's
 * values. And migrated while the probe writes, with each storage mode that copies the disk, no
 * acknowledged write is lost and the destination's image holds the whole log: the probe's
 * `lostWrites: 0` vouches for the disk too.
 */
import dgram from 'node:dgram';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeKvReply, encodeKvRequest, KvOp, KvStatus, type KvReply } from '@livemig/shared/kv';
import { followMigration } from '../../cli/follow-migration.ts';
import { networkSection, startProbe } from '../../cli/probe/during.ts';
import { runProbe } from '../../cli/probe/probe.ts';
import { decodeWal } from '../../shared/src/vm/workloads/kv-wal.ts';
import { useFleet } from '../helpers/fleet.ts';
import { stopAll } from '../helpers/processes.ts';
import { expectCompleted } from '../helpers/report.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';
import { freeUdpPort } from '../helpers/udp.ts';

const fleet = useFleet();
const dirs: string[] = [];
afterEach(async () => {
  await stopAll();
  await Promise.all(dirs.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

const MiB = 1024 * 1024;
/** The probe's value for a key (cli/probe/probe.ts), so the log can be checked against what it sent. */
const probeValue = (key: number): number => (Math.imul(key, 2654435761) ^ 0x5bd1e995) >>> 0;

describe('kv with a disk in an agent', () => {
  it('acknowledges a PUT only once its log record is in the image file; the probe loses no write', async () => {
    const stateDir = await fs.mkdtemp(join(tmpdir(), 'livemig-kv-disk-'));
    dirs.push(stateDir);
    const port = await freeUdpPort();
    const address = `127.0.0.1:${port}`;
    const agent = await fleet.agent({
      args: [
        ...['--vm', 'kv1', '--memory', '32MiB', '--workload', 'kv', '--nic', address, '--disk', '16MiB'],
        ...['--state-dir', stateDir],
      ],
    });
    const [vm] = await fleet.vms(agent);
    expect(vm).toMatchObject({
      name: 'kv1',
      state: 'running',
      workload: 'kv:keys=65536',
      disk: { sizeBytes: 16 * MiB },
    });
    const image = vm!.disk!.image;

    // One PUT at a time; at each reply, the record must already be in the file.
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const PUTS = 40;
    const onDisk: boolean[] = [];
    try {
      for (let id = 1; id <= PUTS; id++) {
        const key = 0x7000_0000 + id;
        const reply = await new Promise<KvReply>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no reply to PUT ${id}`)), 5000);
          const onMessage = (bytes: Buffer): void => {
            const r = decodeKvReply(bytes);
            if (r?.id !== id) return;
            clearTimeout(timer);
            socket.off('message', onMessage);
            resolve(r);
          };
          socket.on('message', onMessage);
          socket.send(encodeKvRequest({ op: KvOp.Put, id, key, value: id * 3 }), port, '127.0.0.1');
        });
        expect(reply).toMatchObject({ op: KvOp.Put, status: KvStatus.Ok, key, value: id * 3 });
        const records = decodeWal(await fs.readFile(image));
        onDisk.push(records.some((r) => r.id === id && r.key === key && r.value === id * 3 && r.op === KvOp.Put));
      }
    } finally {
      socket.close();
    }
    expect(onDisk).toEqual(Array.from({ length: PUTS }, () => true));

    const probe = await runProbe({
      target: { host: '127.0.0.1', port },
      intervalMs: 2,
      durationMs: 1000,
      writes: true,
    });
    expect(probe.writes!.acknowledged).toBeGreaterThan(100);
    expect(probe.writes!.lostWrites).toBe(0);

    // The log: records 1..n, in order, ours first, then the probe's PUTs (key = id, its value).
    const records = decodeWal(await fs.readFile(image));
    expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i + 1));
    expect(records.slice(0, PUTS).map((r) => r.id)).toEqual(Array.from({ length: PUTS }, (_, i) => i + 1));
    const fromProbe = records.slice(PUTS);
    expect(fromProbe.length).toBeGreaterThanOrEqual(probe.writes!.acknowledged);
    expect(fromProbe.every((r) => r.op === KvOp.Put && r.key === r.id && r.value === probeValue(r.key))).toBe(true);
    const [after] = await fleet.vms(agent);
    expect(after!.disk!.allocatedBytes).toBe(Math.ceil(records.length / 128) * 4096);
  });

  // One pair of agents for the three storage modes: each test creates its VM on the source, and
  // it is destroyed on both after it (test/helpers/shared-pair.ts).
  const pair = useSharedPair({ start: () => fleet.pair(), ask: fleet.ask });

  it.each(['copy', 'mirror', 'postcopy'] as const)(
    'migrated with --storage %s while probed with writes: no acknowledged write lost, the log moved with the disk',
    async (storage) => {
      const [sourceAgent, destAgent] = await pair.agents();
      const source = await fleet.connect(sourceAgent);
      const dest = await fleet.connect(destAgent);
      try {
        const port = await freeUdpPort();
        const address = `127.0.0.1:${port}`;
        await source.request('create-vm', {
          name: 'kv1',
          memory: '32MiB',
          workload: 'kv',
          nic: address,
          disk: '16MiB',
        });
        const probe = startProbe({ target: { host: '127.0.0.1', port }, intervalMs: 2, tailMs: 300 });
        await probe.answered;
        const migrationId = await fleet.start(source, destAgent, { vm: 'kv1', params: { storage } });
        const report = await followMigration(source, migrationId, { progress: false });
        const network = networkSection(await probe.finish(), report);
        expectCompleted(report);
        expect(network.lostWrites).toBe(0);
        expect(network.requests).toBeGreaterThan(50);
        // The destination's image holds the whole log, in sequence.
        const vm = (await dest.request('query-vms', {})).vms.find((v) => v.name === 'kv1')!;
        const records = decodeWal(await fs.readFile(vm.disk!.image));
        expect(records.length).toBeGreaterThan(50);
        expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i + 1));
        expect(records.every((r) => r.op === KvOp.Put && r.value === probeValue(r.key))).toBe(true);
      } finally {
        source.close();
        dest.close();
      }
    },
  );
});
