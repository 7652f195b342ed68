/**
 * kv with a disk (issue 15): every PUT and DEL goes through a write-ahead log on the disk and is
 * acknowledged only once its record's write completed — driven on one thread
 * (kv-disk-harness.ts), where the test decides when the disk completes, so "only after" is
 * checked step by step against the image file itself.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  KvOp,
  KvStatus,
  decodeKvReply,
  encodeKvRequest,
  type KvReply,
  type KvRequest,
} from '../../../../shared/src/kv/index.ts';
import { W_AVAIL, W_USED, blkSlotOffset } from '../../../../shared/src/vm/disk/layout.ts';
import {
  NIC_PAGES,
  RING_SLOTS,
  W_RX_USED,
  W_TX_PRODUCED,
  ipv4ToU32,
  rxSlotOffset,
  txSlotOffset,
} from '../../../../shared/src/vm/nic/index.ts';
import { R_STEP_LO } from '../../../../shared/src/vm/registers.ts';
import { ToyVm } from '../../../../shared/src/vm/toy-vm.ts';
import { parseVmSpec } from '../../../../shared/src/vm/vm-spec.ts';
import { DISK_RING_PAGE } from '../../../../shared/src/vm/workloads/disk.ts';
import {
  KV_DISK_TABLE_PAGE,
  KV_WAL_BUFFER_PAGE,
  R_KV_REQUESTS,
  R_KV_WAL_BLOCKS,
  R_KV_WAL_BUSY,
  R_KV_WAL_FAILED,
  R_KV_WAL_RECORDS,
  kv,
  kvTablePage,
} from '../../../../shared/src/vm/workloads/kv.ts';
import { decodeWal, decodeWalBlock, type KvWalRecord } from '../../../../shared/src/vm/workloads/kv-wal.ts';
import { DISK_BYTES_PARAM, MAX_PAGES_PER_STEP } from '../../../../shared/src/vm/workloads/types.ts';
import { waitUntil } from '../../../helpers/wait.ts';
import { blockOf, bootKvWithDisk, type KvDiskVm, type KvDiskVmOptions } from './kv-disk-harness.ts';
import { MiB, bootKv, memoryBytes, type KvVm } from './kv-harness.ts';

const put = (id: number, key: number, value: number): KvRequest => ({ op: KvOp.Put, id, key, value });
const get = (id: number, key: number): KvRequest => ({ op: KvOp.Get, id, key, value: 0 });
const del = (id: number, key: number): KvRequest => ({ op: KvOp.Del, id, key, value: 0 });

const vms: KvDiskVm[] = [];
const toyVms: ToyVm[] = [];
afterEach(async () => {
  await Promise.all([...vms.splice(0).map((vm) => vm.close()), ...toyVms.splice(0).map((vm) => vm.destroy())]);
});
async function boot(options: KvDiskVmOptions = {}): Promise<KvDiskVm> {
  const vm = await bootKvWithDisk(options);
  vms.push(vm);
  return vm;
}

const pageOf = (byteOffset: number): number => byteOffset >>> 12;
const word = (vm: KvVm, page: number, w: number): number =>
  Atomics.load(new Int32Array(vm.memory.page(page).buffer, vm.memory.page(page).byteOffset, 1024), w) >>> 0;
const asRecord = (r: KvRequest, seq: number): KvWalRecord => ({ seq, op: r.op, key: r.key, value: r.value, id: r.id });

/** Sends requests a ring's worth at a time, lets guest and disk settle, returns the replies in order. */
async function serve(vm: KvDiskVm, requests: readonly KvRequest[], batch = Infinity): Promise<(KvReply | null)[]> {
  const replies: (KvReply | null)[] = [];
  for (let i = 0; i < requests.length; i += RING_SLOTS) {
    for (const request of requests.slice(i, i + RING_SLOTS)) expect(vm.send(request)).toBe(true);
    await vm.settle(batch);
    for (const sent of vm.drain()) replies.push(sent.reply);
  }
  return replies;
}

/** The same requests without a disk (kv-harness.ts): the replies kv gave before disks existed. */
function serveWithoutDisk(requests: readonly KvRequest[]): (KvReply | null)[] {
  const vm = bootKv();
  const replies: (KvReply | null)[] = [];
  for (let i = 0; i < requests.length; i += RING_SLOTS) {
    for (const request of requests.slice(i, i + RING_SLOTS)) vm.send(request);
    vm.runAll();
    for (const sent of vm.drain()) replies.push(sent.reply);
  }
  return replies;
}

/** A mixed sequence over few keys: hits, misses, updates, deletes, re-inserts. */
function mixed(count: number): KvRequest[] {
  return Array.from({ length: count }, (_, i) => {
    const key = (i * 7) % 23;
    return i % 3 === 0 ? get(i + 1, key) : i % 5 === 0 ? del(i + 1, key) : put(i + 1, key, (i * 1000 + 1) >>> 0);
  });
}

describe('kv with a disk: registry and layout', () => {
  it('takes a disk optionally; with one, its table moves past the disk ring and the log buffer', () => {
    expect(kv.drivesDisk).toBe('optional');
    expect(DISK_RING_PAGE).toBe(NIC_PAGES);
    expect(KV_WAL_BUFFER_PAGE).toBe(DISK_RING_PAGE + 3);
    expect(KV_DISK_TABLE_PAGE).toBe(KV_WAL_BUFFER_PAGE + 1);
    expect(kv.reservedBytes!({ keys: 512 })).toBe((NIC_PAGES + 2) * 4096); // as before disks
    expect(kv.reservedBytes!({ keys: 512, [DISK_BYTES_PARAM]: MiB })).toBe((KV_DISK_TABLE_PAGE + 2) * 4096);
    expect(kvTablePage(42, 2)).toBe(kvTablePage(42, 2, NIC_PAGES));
    expect(kvTablePage(42, 2, KV_DISK_TABLE_PAGE) - kvTablePage(42, 2)).toBe(KV_DISK_TABLE_PAGE - NIC_PAGES);
  });

  it('boot puts the disk size in blocks in R_KV_WAL_BLOCKS; without a disk it stays 0', async () => {
    const regs = new Uint32Array(32);
    kv.initRegisters!(regs, { keys: 512 }, 512);
    expect(regs[R_KV_WAL_BLOCKS]).toBe(0);
    const vm = await boot({ diskBytes: 16 * MiB });
    expect(vm.regs[R_KV_WAL_BLOCKS]).toBe(4096);
  });
});

describe('kv with a disk: a PUT or DEL is acknowledged only after its log record is in the image file', () => {
  it('log step, then nothing until the disk completed, then the commit step answers', async () => {
    const vm = await boot();
    const request = put(77, 0xabcd, 0x1234_5678);
    vm.send(request);

    // The log step: the record goes to the buffer and a write to the ring; no reply, no RX consumed.
    expect(vm.program.pending!()).toBe(1);
    vm.program.run(1);
    expect(vm.regs[R_KV_WAL_BUSY]).toBe(1);
    expect(vm.regs[R_KV_WAL_RECORDS]).toBe(0);
    expect(word(vm, DISK_RING_PAGE, W_AVAIL)).toBe(1);
    expect(decodeWalBlock(vm.memory.page(KV_WAL_BUFFER_PAGE))).toEqual([asRecord(request, 1)]);
    expect(decodeWalBlock(blockOf(vm.file(), 0))).toEqual([]); // not on disk yet
    // However often the vCPU asks, nothing is runnable until the device completes: no reply.
    expect(vm.program.pending!()).toBe(0);
    expect(vm.drain()).toEqual([]);
    expect(vm.regs[R_KV_REQUESTS]).toBe(0);

    // The device writes the block into the file, then completes.
    const kicks = vm.kicks;
    expect(await vm.serveDisk()).toBe(1);
    expect(vm.kicks).toBe(kicks + 1);
    expect(word(vm, DISK_RING_PAGE, W_USED)).toBe(1);
    expect(decodeWalBlock(blockOf(vm.file(), 0))).toEqual([asRecord(request, 1)]);

    // The commit step: the reply, the record counted.
    expect(vm.program.pending!()).toBe(1);
    vm.program.run(1);
    expect(vm.drain().map((s) => s.reply)).toEqual([{ ...request, status: KvStatus.Ok }]);
    expect(vm.regs[R_KV_WAL_BUSY]).toBe(0);
    expect(vm.regs[R_KV_WAL_RECORDS]).toBe(1);
    expect(vm.regs[R_KV_REQUESTS]).toBe(1);
    expect(vm.regs[R_STEP_LO]).toBe(2);
    expect(vm.program.pending!()).toBe(0);
  });

  it('every reply that leaves finds its request logged in the file, in order; GETs and malformed datagrams log nothing', async () => {
    const vm = await boot();
    const requests = mixed(300);
    const logged: KvRequest[] = [];
    for (const request of requests) {
      vm.send(request);
      if (request.op !== KvOp.Get) logged.push(request);
      // Whenever something runs, whatever has been answered so far is in the log on disk.
      for (;;) {
        const ran = vm.runAll();
        for (const sent of vm.drain()) {
          const reply = sent.reply!;
          if (reply.op === KvOp.Get) continue;
          const onDisk = decodeWal(vm.file());
          expect(onDisk.find((r) => r.id === reply.id)).toMatchObject({ op: reply.op, key: reply.key });
        }
        if (ran === 0 && (await vm.serveDisk()) === 0) break;
      }
    }
    vm.send(new Uint8Array([1, 2, 3]));
    await vm.settle();
    expect(vm.drain()).toEqual([]);
    expect(vm.regs[R_KV_WAL_RECORDS]).toBe(logged.length);
    expect(vm.regs[R_KV_REQUESTS]).toBe(requests.length);
    expect(decodeWal(vm.file())).toEqual(logged.map((r, i) => asRecord(r, i + 1)));
    expect(vm.image.allocatedBytes).toBe(Math.ceil(logged.length / 128) * 4096);
  });

  it('a record whose write fails is never acknowledged: the request is dropped and counted', async () => {
    const vm = await boot();
    vm.send(put(1, 5, 50));
    vm.runAll();
    await vm.image.close(); // the file system now fails every write: S_IOERR
    expect(await vm.serveDisk()).toBe(1);
    expect(vm.program.pending!()).toBe(1);
    vm.program.run(1);
    expect(vm.drain()).toEqual([]);
    expect(vm.regs[R_KV_WAL_FAILED]).toBe(1);
    expect(vm.regs[R_KV_WAL_RECORDS]).toBe(0);
    expect(vm.regs[R_KV_WAL_BUSY]).toBe(0);
    expect(vm.program.pending!()).toBe(0); // the request is gone from RX
    // Not applied either: a GET does not find it.
    vm.send(get(2, 5));
    expect(vm.runAll()).toBe(1);
    expect(vm.drain().map((s) => s.reply)).toEqual([{ ...get(2, 5), status: KvStatus.NotFound }]);
  });
});

describe('kv with a disk: semantics and determinism', () => {
  it('GET/PUT/DEL give the same replies as without a disk, whatever the batch size', async () => {
    const requests = mixed(700);
    const expected = serveWithoutDisk(requests);
    for (const batch of [1, 7, Infinity]) {
      const vm = await boot();
      expect(await serve(vm, requests, batch)).toEqual(expected);
    }
  });

  it('replaying the log from an empty table gives the table the GETs see', async () => {
    const vm = await boot();
    await serve(vm, mixed(500));
    const model = new Map<number, number>();
    for (const r of decodeWal(vm.file())) {
      if (r.op === KvOp.Put) model.set(r.key, r.value);
      else model.delete(r.key);
    }
    const keys = Array.from({ length: 23 }, (_, k) => k);
    const replies = await serve(
      vm,
      keys.map((k) => get(1000 + k, k)),
    );
    expect(replies.map((r) => (r!.status === KvStatus.Ok ? r!.value : undefined))).toEqual(
      keys.map((k) => model.get(k)),
    );
  });

  it('pending() never offers a batch past a log step', async () => {
    const vm = await boot();
    for (const r of [get(1, 1), get(2, 2), put(3, 3, 3), get(4, 4), del(5, 3)]) vm.send(r);
    expect(vm.program.pending!()).toBe(3); // two GETs and the PUT's log step
    vm.program.run(3);
    expect(vm.program.pending!()).toBe(0);
    await vm.serveDisk();
    expect(vm.program.pending!()).toBe(1); // the commit
    vm.program.run(1);
    expect(vm.program.pending!()).toBe(2); // the GET and the DEL's log step
    vm.program.run(2);
    expect(vm.program.pending!()).toBe(0);
    await vm.serveDisk();
    vm.program.run(1);
    expect(vm.drain().map((s) => [s.reply!.id, s.reply!.status])).toEqual([
      [1, KvStatus.NotFound],
      [2, KvStatus.NotFound],
      [3, KvStatus.Ok],
      [4, KvStatus.NotFound],
      [5, KvStatus.Ok],
    ]);
  });

  it('the log wraps at the end of the disk: block 0 again after the last', async () => {
    const vm = await boot();
    vm.regs[R_KV_WAL_BLOCKS] = 2; // the guest's copy of the capacity: a two-block log
    const requests = Array.from({ length: 300 }, (_, i) => put(i + 1, i, i));
    await serve(vm, requests);
    const file = vm.file();
    expect(decodeWalBlock(blockOf(file, 0)).map((r) => r.seq)).toEqual(range(257, 300));
    expect(decodeWalBlock(blockOf(file, 1)).map((r) => r.seq)).toEqual(range(129, 256));
    expect(decodeWalBlock(blockOf(file, 2))).toEqual([]);
    expect(vm.regs[R_KV_WAL_RECORDS]).toBe(300);
  });

  it('two runs with the same datagrams, batched and completed differently: same registers, memory and disk', async () => {
    const requests = mixed(600);
    const fingerprint = async (batch: number, regionBytes?: number): Promise<string[]> => {
      const vm = await boot({ ...(regionBytes === undefined ? {} : { regionBytes }) });
      for (let i = 0; i < requests.length; i += 50) {
        for (const r of requests.slice(i, i + 50)) vm.send(r);
        await vm.settle(batch);
        vm.drain();
      }
      const hash = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
      const disk = vm.file();
      return [Buffer.from(vm.regs.buffer).toString('hex'), hash(memoryBytes(vm)), hash(disk)];
    };
    const a = await fingerprint(Infinity);
    expect(await fingerprint(1, 64 * 1024)).toEqual(a);
    expect(await fingerprint(5)).toEqual(a);
  });
});

describe('kv with a disk: nextPages and the dirty log', () => {
  it('names exactly the pages each step reads or writes, and the vCPU marks every page it writes', async () => {
    const vm = await boot({ memoryBytes: MiB, keys: 512 });
    const out = new Int32Array(MAX_PAGES_PER_STEP);
    const requests = [put(1, 10, 1), get(2, 10), del(3, 10), put(4, 11, 4), del(5, 99), new Uint8Array(5)];
    // Enough rounds that RX, TX and disk ring slots cross their pages, and the buffer's records a block.
    for (let round = 0; round < 50; round++) {
      for (const request of requests) {
        vm.send(request);
        const valid = !(request instanceof Uint8Array);
        const logged = valid && request.op !== KvOp.Get;
        for (const phase of logged ? (['log', 'commit'] as const) : (['serve'] as const)) {
          if (phase === 'commit') await vm.serveDisk();
          expect(vm.program.pending!()).toBeGreaterThan(0);
          vm.dirty.harvest();
          const before = memoryBytes(vm);
          const regsBefore = Uint32Array.from(vm.regs);
          const listed = [...out.subarray(0, vm.program.nextPages(out))];
          expect(Buffer.compare(memoryBytes(vm), before)).toBe(0); // nextPages changes nothing
          expect(Array.from(vm.regs)).toEqual(Array.from(regsBefore));

          const avail = word(vm, DISK_RING_PAGE, W_AVAIL);
          const rxPage = pageOf(rxSlotOffset(word(vm, 0, W_RX_USED) - 1));
          const txPage = pageOf(txSlotOffset(word(vm, 0, W_TX_PRODUCED)));
          const tablePage = valid ? kvTablePage(request.key, 2, KV_DISK_TABLE_PAGE) : -1;
          const expected = {
            log: [0, rxPage, DISK_RING_PAGE, pageOf(blkSlotOffset(DISK_RING_PAGE, avail)), KV_WAL_BUFFER_PAGE],
            commit: [0, rxPage, DISK_RING_PAGE, pageOf(blkSlotOffset(DISK_RING_PAGE, avail - 1)), tablePage, txPage],
            serve: valid ? [0, rxPage, tablePage, txPage] : [0, rxPage],
          }[phase];
          expect(listed).toEqual(expected);

          // A copy whose every unlisted page is garbage does exactly the same step.
          const clone = bootKv({ memoryBytes: MiB, keys: 512 });
          const poisoned = Uint8Array.from(before);
          for (let p = 0; p < vm.memory.pageCount; p++) {
            if (!listed.includes(p)) poisoned.fill(0xa5, p * 4096, (p + 1) * 4096);
          }
          clone.memory.region(0).set(poisoned);
          clone.regs.set(regsBefore);

          vm.program.run(1);
          clone.program.run(1);
          const after = memoryBytes(vm);
          const changed: number[] = [];
          for (let p = 0; p < vm.memory.pageCount; p++) {
            const a = before.subarray(p * 4096, (p + 1) * 4096);
            if (Buffer.compare(a, after.subarray(p * 4096, (p + 1) * 4096)) !== 0) changed.push(p);
          }
          // Every page the step changed is marked, and only listed pages are (an update to the
          // same value marks its page unchanged).
          const dirty = [...vm.dirty.harvest()];
          expect(changed.filter((p) => !dirty.includes(p))).toEqual([]);
          expect(dirty.filter((p) => !listed.includes(p))).toEqual([]);
          if (phase === 'log') expect(dirty).toEqual(listed.slice(2).sort((x, y) => x - y));
          expect(Array.from(clone.regs)).toEqual(Array.from(vm.regs));
          const cloneAfter = memoryBytes(clone);
          for (const p of listed) {
            expect(
              Buffer.compare(cloneAfter.subarray(p * 4096, (p + 1) * 4096), after.subarray(p * 4096, (p + 1) * 4096)),
            ).toBe(0);
          }
        }
      }
      vm.drain();
    }
    expect(vm.regs[R_KV_WAL_RECORDS]).toBe(50 * 4);
    expect(vm.regs[R_KV_WAL_FAILED]).toBe(0);
  });
});

describe('kv with a disk in a ToyVm (vCPU worker, the disk served from the event loop)', () => {
  const spec = parseVmSpec({ memory: '4MiB', workload: 'kv:keys=1024', nic: '192.0.2.77:7700', disk: '1MiB' });
  const from = ipv4ToU32('192.0.2.1');

  /** Boots a VM and feeds it `requests` in chunks, each answered before the next; checks every reply against the image file. */
  async function run(requests: readonly KvRequest[], chunk: number): Promise<{ vm: ToyVm; replies: KvReply[] }> {
    const vm = await ToyVm.boot(spec);
    toyVms.push(vm);
    const nic = vm.nic!;
    vm.start();
    const replies: KvReply[] = [];
    /** Writes acknowledged while their record was not in the file (must stay empty). */
    const unlogged: number[] = [];
    for (let i = 0; i < requests.length; i += chunk) {
      const part = requests.slice(i, i + chunk);
      for (const r of part) expect(nic.receive(from, 5000, encodeKvRequest(r))).toBe(true);
      await waitUntil(
        () => {
          nic.transmit((_ip, _port, payload) => {
            const reply = decodeKvReply(payload)!;
            replies.push(reply);
            // At the moment its reply leaves, a PUT's or DEL's record is in the file.
            if (reply.op !== KvOp.Get) {
              const record = decodeWal(readFileSync(vm.disk!.path)).find((w) => w.id === reply.id);
              if (record?.op !== reply.op || record.key !== reply.key) unlogged.push(reply.id);
            }
          });
          return replies.length === i + part.length;
        },
        { what: `replies to requests ${i + 1}..${i + part.length}`, intervalMs: 1 },
      );
    }
    await vm.pause();
    expect(unlogged).toEqual([]);
    return { vm, replies };
  }

  it('acknowledges every write once logged; two VMs fed the same datagrams end with the same registers, memory and disk', async () => {
    const requests = mixed(400);
    const [a, b] = [await run(requests, 40), await run(requests, 7)];
    expect(a.replies).toEqual(serveWithoutDisk(requests));
    expect(b.replies).toEqual(a.replies);
    const logged = requests.filter((r) => r.op !== KvOp.Get).length;
    const cpu = (vm: ToyVm): Uint32Array => new Uint32Array(vm.exportCpuState().slice().buffer);
    expect(cpu(a.vm)[R_KV_WAL_RECORDS]).toBe(logged);
    expect(cpu(a.vm)[R_KV_WAL_BLOCKS]).toBe(256);
    expect(cpu(a.vm)[R_KV_WAL_BUSY]).toBe(0);
    expect(Buffer.from(b.vm.exportCpuState())).toEqual(Buffer.from(a.vm.exportCpuState()));
    expect(await b.vm.digest()).toBe(await a.vm.digest());
    expect(await b.vm.diskDigest()).toBe(await a.vm.diskDigest());
    expect(b.vm.stateDigest()).toBe(a.vm.stateDigest());
    expect(decodeWal(readFileSync(a.vm.disk!.path))).toHaveLength(logged);
  });

  it('a pause between the log step and the commit drains the disk: the record is on disk, the reply comes after resume', async () => {
    const vm = await ToyVm.boot(spec);
    toyVms.push(vm);
    const nic = vm.nic!;
    expect(nic.receive(from, 5000, encodeKvRequest(put(9, 4, 44)))).toBe(true);
    await vm.runSteps(1, { fullSpeed: true }); // the log step only; runSteps drains the disk
    const cpu = new Uint32Array(vm.exportCpuState().slice().buffer);
    expect([cpu[R_KV_WAL_BUSY], cpu[R_KV_WAL_RECORDS]]).toEqual([1, 0]);
    expect(decodeWal(readFileSync(vm.disk!.path))).toEqual([asRecord(put(9, 4, 44), 1)]);
    expect(nic.transmit(() => {})).toBe(0);
    await vm.runSteps(1, { fullSpeed: true }); // the commit
    const sent: KvReply[] = [];
    nic.transmit((_ip, _port, payload) => sent.push(decodeKvReply(payload)!));
    expect(sent).toEqual([{ ...put(9, 4, 44), status: KvStatus.Ok }]);
  });
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
