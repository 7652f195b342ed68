import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvOp, KvStatus, encodeKvRequest, type KvReply, type KvRequest } from '../../../../shared/src/kv/index.ts';
import {
  NIC_PAGES,
  RING_SLOTS,
  W_RX_CONSUMED,
  W_RX_USED,
  W_TX_PRODUCED,
  W_TX_USED,
  ipv4ToU32,
  rxSlotOffset,
  txSlotOffset,
} from '../../../../shared/src/vm/nic/index.ts';
import { R_ACC, R_STEP_HI, R_STEP_LO } from '../../../../shared/src/vm/registers.ts';
import { parseWorkloadSpec } from '../../../../shared/src/vm/workload-spec.ts';
import { WORKLOADS } from '../../../../shared/src/vm/workloads/index.ts';
import { R_KV_MALFORMED, R_KV_REQUESTS, kv, kvTablePage } from '../../../../shared/src/vm/workloads/kv.ts';
import { MAX_PAGES_PER_STEP } from '../../../../shared/src/vm/workloads/types.ts';
import { MiB, bootKv, memoryBytes, type KvVm, type KvVmOptions } from './kv-harness.ts';

const put = (id: number, key: number, value: number): KvRequest => ({ op: KvOp.Put, id, key, value });
const get = (id: number, key: number): KvRequest => ({ op: KvOp.Get, id, key, value: 0 });
const del = (id: number, key: number): KvRequest => ({ op: KvOp.Del, id, key, value: 0 });
const reply = (request: KvRequest, status: KvStatus, value: number): KvReply => ({ ...request, status, value });

/** Sends requests through the rings (a ring's worth at a time), runs the guest, returns the replies in order. */
function serve(vm: KvVm, requests: readonly KvRequest[], batch = Infinity): (KvReply | null)[] {
  const replies: (KvReply | null)[] = [];
  for (let i = 0; i < requests.length; i += RING_SLOTS) {
    for (const request of requests.slice(i, i + RING_SLOTS)) expect(vm.send(request)).toBe(true);
    vm.runAll(batch);
    for (const sent of vm.drain()) replies.push(sent.reply);
  }
  return replies;
}

const pageOf = (byteOffset: number): number => byteOffset >>> 12;
const index = (vm: KvVm, word: number): number => Atomics.load(new Int32Array(vm.memory.regions[0]!), word) >>> 0;

describe('kv workload: registry and parameters', () => {
  it('is registered under a fresh id, drives the NIC and runs as fast as input comes', () => {
    expect(WORKLOADS).toContain(kv);
    expect(kv.id).toBe(6);
    expect(new Set(WORKLOADS.map((w) => w.id)).size).toBe(WORKLOADS.length);
    expect(kv.drivesNic).toBe(true);
    expect(kv.stepsPerSecond({ keys: 256 })).toBe(0);
    expect(parseWorkloadSpec('kv', 64 * MiB).canonical).toBe('kv:keys=65536');
    expect(kv.reservedBytes!({ keys: 512 })).toBe((NIC_PAGES + 2) * 4096);
  });

  it.each([
    ['no keys', 'kv:keys=0', 64 * MiB, /positive multiple of 256/],
    ['keys not a multiple of 256', 'kv:keys=300', 64 * MiB, /positive multiple of 256/],
    ['a table larger than memory', 'kv:keys=65536', MiB, /more than the VM's memory/],
    ['a table that leaves no room for the NIC', 'kv:keys=65536', 256 * 4096 + 8 * 4096, /9 NIC pages/],
  ])('rejects %s with ERR_INVALID_WORKLOAD', (_name, spec, memory, message) => {
    expect(() => parseWorkloadSpec(spec, memory)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_WORKLOAD' }));
    expect(() => parseWorkloadSpec(spec, memory)).toThrow(message);
  });

  it('accepts the largest table that fits beside the NIC', () => {
    const fits = (MiB / 4096 - NIC_PAGES) * 256;
    expect(parseWorkloadSpec(`kv:keys=${fits}`, MiB).params.keys).toBe(fits);
    expect(() => parseWorkloadSpec(`kv:keys=${fits + 256}`, MiB)).toThrow(/more than the VM's memory/);
  });
});

describe('kv workload: serving requests', () => {
  it('PUT stores and echoes; GET returns the stored value', () => {
    const vm = bootKv();
    const requests = [
      put(1, 42, 0xdeadbeef),
      get(2, 42),
      put(3, 42, 7),
      get(4, 42),
      put(5, 0xffff_ffff, 1),
      get(6, 0xffff_ffff),
    ];
    expect(serve(vm, requests)).toEqual([
      reply(requests[0]!, KvStatus.Ok, 0xdeadbeef),
      reply(requests[1]!, KvStatus.Ok, 0xdeadbeef),
      reply(requests[2]!, KvStatus.Ok, 7),
      reply(requests[3]!, KvStatus.Ok, 7),
      reply(requests[4]!, KvStatus.Ok, 1),
      reply(requests[5]!, KvStatus.Ok, 1),
    ]);
  });

  it('DEL returns the old value, then GET and DEL say NOT_FOUND; the key can be PUT again', () => {
    const vm = bootKv();
    const requests = [get(1, 9), put(2, 9, 99), del(3, 9), get(4, 9), del(5, 9), put(6, 9, 100), get(7, 9)];
    expect(serve(vm, requests)).toEqual([
      reply(requests[0]!, KvStatus.NotFound, 0),
      reply(requests[1]!, KvStatus.Ok, 99),
      reply(requests[2]!, KvStatus.Ok, 99),
      reply(requests[3]!, KvStatus.NotFound, 0),
      reply(requests[4]!, KvStatus.NotFound, 0),
      reply(requests[5]!, KvStatus.Ok, 100),
      reply(requests[6]!, KvStatus.Ok, 100),
    ]);
  });

  it("replies carry the request's id and go to the sender's address", () => {
    const vm = bootKv();
    const alice = { ip: '192.168.1.20', port: 40000 };
    const bob = { ip: '10.9.8.7', port: 65535 };
    vm.send(put(0xaaaa_0001, 1, 11), alice);
    vm.send(put(0xbbbb_0001, 2, 22), bob);
    vm.send(get(0xaaaa_0002, 2), alice);
    vm.send(get(0xbbbb_0002, 1), bob);
    vm.runAll();
    const sent = vm.drain();
    expect(sent.map((s) => [s.ip, s.port, s.reply?.id, s.reply?.value])).toEqual([
      [ipv4ToU32(alice.ip), alice.port, 0xaaaa_0001, 11],
      [ipv4ToU32(bob.ip), bob.port, 0xbbbb_0001, 22],
      [ipv4ToU32(alice.ip), alice.port, 0xaaaa_0002, 22],
      [ipv4ToU32(bob.ip), bob.port, 0xbbbb_0002, 11],
    ]);
    expect(sent.every((s) => s.payload.length === 16)).toBe(true);
  });

  it('consumes malformed datagrams without replying, and counts them', () => {
    const vm = bootKv();
    const good = encodeKvRequest(put(1, 5, 55));
    const withByte = (i: number, v: number): Uint8Array => {
      const b = Uint8Array.from(good);
      b[i] = v;
      return b;
    };
    const malformed = [
      new Uint8Array(0),
      good.subarray(0, 15),
      Uint8Array.from([...good, 0]),
      new Uint8Array(56),
      withByte(0, 0x4c), // magic
      withByte(1, 0x00), // magic
      withByte(2, 0), // op 0
      withByte(2, 4), // op 4
      withByte(3, 1), // a status byte in a request
    ];
    let steps = 0;
    for (const bytes of malformed) {
      expect(vm.send(bytes)).toBe(true);
      steps += vm.runAll();
    }
    expect(steps).toBe(malformed.length);
    expect(vm.drain()).toEqual([]);
    expect(vm.regs[R_KV_MALFORMED]).toBe(malformed.length);
    expect(vm.regs[R_KV_REQUESTS]).toBe(0);
    expect(vm.program.pending!()).toBe(0);
    // Interleaved with valid requests, only those are answered, in order.
    vm.send(malformed[4]!);
    vm.send(good);
    vm.send(malformed[1]!);
    vm.send(encodeKvRequest(get(2, 5)));
    vm.runAll();
    expect(vm.drain().map((s) => s.reply)).toEqual([
      reply(put(1, 5, 55), KvStatus.Ok, 55),
      reply(get(2, 5), KvStatus.Ok, 55),
    ]);
    expect(vm.regs[R_KV_MALFORMED]).toBe(malformed.length + 2);
    expect(vm.regs[R_KV_REQUESTS]).toBe(2);
    expect(vm.regs[R_STEP_LO]).toBe(malformed.length + 4);
  });

  it('RX full: the device drops and counts the extra datagram; the ring takes more once consumed', () => {
    const vm = bootKv();
    for (let i = 0; i < RING_SLOTS; i++) expect(vm.send(put(i, i, i))).toBe(true);
    expect(vm.send(put(RING_SLOTS, 1, 1))).toBe(false);
    expect(vm.nic.counters).toMatchObject({ rxPackets: RING_SLOTS, rxDropped: 1 });
    expect(vm.program.pending!()).toBe(RING_SLOTS);
    vm.runAll();
    const ids = vm.drain().map((s) => s.reply!.id);
    expect(ids).toEqual(Array.from({ length: RING_SLOTS }, (_, i) => i));
    expect(vm.send(get(1000, 3))).toBe(true);
    vm.runAll();
    expect(vm.drain().map((s) => s.reply)).toEqual([reply(get(1000, 3), KvStatus.Ok, 3)]);
  });

  it('TX full: pending() is 0 until the device transmits, and no reply is lost', () => {
    const vm = bootKv();
    for (let i = 0; i < RING_SLOTS; i++) vm.send(put(i, i, i));
    expect(vm.runAll()).toBe(RING_SLOTS);
    for (let i = RING_SLOTS; i < RING_SLOTS + 10; i++) vm.send(get(i, i - RING_SLOTS));
    expect(vm.program.pending!()).toBe(0); // 10 requests waiting, but no TX slot for a reply
    expect(vm.runAll()).toBe(0);
    const kicks = vm.kicks;
    const first = vm.drain();
    expect(vm.kicks).toBe(kicks + 1); // freeing TX slots wakes the halted guest
    expect(vm.program.pending!()).toBe(10);
    vm.runAll();
    const ids = [...first, ...vm.drain()].map((s) => s.reply!.id);
    expect(ids).toEqual(Array.from({ length: RING_SLOTS + 10 }, (_, i) => i));
    expect(vm.nic.counters.txPackets).toBe(RING_SLOTS + 10);
  });

  // The indices cross 2^32 (u32 wrap) or 2^31 (where Int32 words turn negative) part-way through.
  it.each([2 ** 32 - 300, 2 ** 31 - 300])(
    'wraps around both rings over more than 2 × RING_SLOTS requests, indices from %i',
    (start) => {
      const vm = bootKv();
      const idx = new Int32Array(vm.memory.regions[0]!);
      for (const w of [W_RX_USED, W_RX_CONSUMED, W_TX_PRODUCED, W_TX_USED]) Atomics.store(idx, w, start | 0);
      const total = 3 * RING_SLOTS + 17;
      const requests: KvRequest[] = [];
      const expected: KvReply[] = [];
      const model = new Map<number, number>();
      for (let i = 0; i < total; i++) {
        const key = i % 37;
        const request = i % 3 === 0 ? get(i, key) : i % 7 === 0 ? del(i, key) : put(i, key, i * 1000);
        requests.push(request);
        const had = model.get(key);
        if (request.op === KvOp.Get) expected.push(reply(request, had === undefined ? 1 : 0, had ?? 0));
        else if (request.op === KvOp.Del) {
          expected.push(reply(request, had === undefined ? 1 : 0, had ?? 0));
          model.delete(key);
        } else {
          expected.push(reply(request, KvStatus.Ok, request.value));
          model.set(key, request.value);
        }
      }
      // Odd chunk and batch sizes, so slots and batches never line up with the ring.
      const got: (KvReply | null)[] = [];
      for (let i = 0; i < total; i += 100) {
        for (const request of requests.slice(i, i + 100)) expect(vm.send(request)).toBe(true);
        vm.runAll(7);
        got.push(...vm.drain().map((s) => s.reply));
      }
      expect(got).toEqual(expected);
      for (const w of [W_RX_USED, W_RX_CONSUMED, W_TX_PRODUCED, W_TX_USED]) {
        expect(index(vm, w)).toBe((start + total) % 2 ** 32);
      }
    },
  );

  it('a full bucket refuses a new key with FULL; updates still work and a deleted entry is reused', () => {
    const vm = bootKv({ keys: 256 }); // one table page: every key shares the bucket
    const fill = Array.from({ length: 256 }, (_, i) => put(i, 1000 + i, i));
    expect(serve(vm, fill).every((r) => r?.status === KvStatus.Ok)).toBe(true);
    const requests = [
      put(300, 5000, 1), // new key, no room
      get(301, 5000),
      put(302, 1000, 77), // existing key: an update needs no room
      get(303, 1000),
      del(304, 1001),
      put(305, 5000, 2), // takes the deleted entry
      get(306, 5000),
      get(307, 1255),
      put(308, 6000, 3), // full again
    ];
    expect(serve(vm, requests)).toEqual([
      reply(requests[0]!, KvStatus.Full, 1),
      reply(requests[1]!, KvStatus.NotFound, 0),
      reply(requests[2]!, KvStatus.Ok, 77),
      reply(requests[3]!, KvStatus.Ok, 77),
      reply(requests[4]!, KvStatus.Ok, 1),
      reply(requests[5]!, KvStatus.Ok, 2),
      reply(requests[6]!, KvStatus.Ok, 2),
      reply(requests[7]!, KvStatus.Ok, 255),
      reply(requests[8]!, KvStatus.Full, 3),
    ]);
  });
});

describe('kv workload: dirty pages and nextPages', () => {
  it('with nothing to read, the next step touches only page 0', () => {
    const vm = bootKv();
    const out = new Int32Array(MAX_PAGES_PER_STEP);
    expect(vm.program.pending!()).toBe(0);
    expect([...out.subarray(0, vm.program.nextPages(out))]).toEqual([0]);
  });

  it('marks every page a step writes, and nextPages names exactly the pages the step reads or writes', () => {
    const opts: KvVmOptions = { memoryBytes: MiB, keys: 512 };
    const tablePages = 2;
    const vm = bootKv(opts);
    const out = new Int32Array(MAX_PAGES_PER_STEP);
    const bad = new Uint8Array(3);
    // [request or malformed bytes, does the step write the table page?]
    const steps: [KvRequest | Uint8Array, boolean][] = [
      [put(1, 10, 1), true], // insert
      [put(2, 10, 2), true], // update
      [get(3, 10), false], // hit
      [get(4, 11), false], // miss
      [bad, false],
      [del(5, 11), false], // miss
      [del(6, 10), true], // hit
      [put(7, 10, 3), true], // reuses the tombstone
    ];
    // Enough rounds that the RX and TX slots move through every ring page.
    for (let round = 0; round < 70; round++) {
      for (const [request, writesTable] of steps) {
        const rxPage = pageOf(rxSlotOffset(index(vm, W_RX_USED)));
        vm.send(request);
        vm.dirty.harvest();
        const before = memoryBytes(vm);
        const regsBefore = Array.from(vm.regs);
        const listed = [...out.subarray(0, vm.program.nextPages(out))];
        // nextPages changes nothing.
        expect(Buffer.compare(memoryBytes(vm), before)).toBe(0);
        expect(Array.from(vm.regs)).toEqual(regsBefore);

        const txPage = pageOf(txSlotOffset(index(vm, W_TX_PRODUCED)));
        const valid = !(request instanceof Uint8Array);
        const tablePage = valid ? kvTablePage(request.key, tablePages) : -1;
        expect(listed).toEqual(valid ? [0, rxPage, tablePage, txPage] : [0, rxPage]);

        // A clone whose every unlisted page is garbage must do exactly the same step: the step
        // reads nothing outside the listed pages.
        const clone = bootKv(opts);
        const poisoned = Uint8Array.from(before);
        for (let p = 0; p < vm.memory.pageCount; p++) {
          if (!listed.includes(p)) poisoned.fill(0xa5, p * 4096, (p + 1) * 4096);
        }
        clone.memory.region(0).set(poisoned);
        clone.regs.set(vm.regs);

        vm.program.run(1);
        clone.program.run(1);

        const after = memoryBytes(vm);
        const changed: number[] = [];
        for (let p = 0; p < vm.memory.pageCount; p++) {
          const a = before.subarray(p * 4096, (p + 1) * 4096);
          const b = after.subarray(p * 4096, (p + 1) * 4096);
          if (Buffer.compare(a, b) !== 0) changed.push(p);
        }
        const dirty = [...vm.dirty.harvest()];
        const written = valid ? [0, ...(writesTable ? [tablePage] : []), txPage].sort((x, y) => x - y) : [0];
        expect(dirty).toEqual(written);
        expect(changed.every((p) => dirty.includes(p))).toBe(true);
        expect(dirty.every((p) => listed.includes(p))).toBe(true);
        expect(Array.from(clone.regs)).toEqual(Array.from(vm.regs));
        const cloneAfter = memoryBytes(clone);
        for (const p of listed) {
          expect(
            Buffer.compare(cloneAfter.subarray(p * 4096, (p + 1) * 4096), after.subarray(p * 4096, (p + 1) * 4096)),
          ).toBe(0);
        }
        vm.drain();
      }
    }
    expect(vm.dirty.pendingCount).toBe(0);
  });
});

describe('kv workload: against a Map model', () => {
  const op = fc.record({
    op: fc.constantFrom(KvOp.Get, KvOp.Put, KvOp.Del),
    key: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 0xffff_ffff })),
    value: fc.integer({ min: 0, max: 0xffff_ffff }),
  });

  it('any sequence of PUT/GET/DEL through the rings gets the same replies as a Map', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 600, size: 'max' }),
        fc.integer({ min: 1, max: RING_SLOTS }),
        fc.integer({ min: 1, max: 300 }),
        fc.constantFrom(256, 512),
        (ops, chunk, batch, keys) => {
          const vm = bootKv({ keys });
          const tablePages = keys / 256;
          const model = new Map<number, number>();
          const live = new Map<number, number>(); // table page → live entries
          const expected: KvReply[] = [];
          const requests = ops.map((o, id) => ({ ...o, id, value: o.op === KvOp.Put ? o.value : 0 }));
          for (const r of requests) {
            const had = model.get(r.key);
            const page = kvTablePage(r.key, tablePages);
            if (r.op === KvOp.Get) expected.push(reply(r, had === undefined ? 1 : 0, had ?? 0));
            else if (r.op === KvOp.Del) {
              expected.push(reply(r, had === undefined ? 1 : 0, had ?? 0));
              if (had !== undefined) {
                model.delete(r.key);
                live.set(page, live.get(page)! - 1);
              }
            } else if (had === undefined && (live.get(page) ?? 0) === 256) {
              expected.push(reply(r, KvStatus.Full, r.value));
            } else {
              expected.push(reply(r, KvStatus.Ok, r.value));
              if (had === undefined) live.set(page, (live.get(page) ?? 0) + 1);
              model.set(r.key, r.value);
            }
          }
          const got: (KvReply | null)[] = [];
          for (let i = 0; i < requests.length; i += chunk) {
            for (const r of requests.slice(i, i + chunk)) vm.send(r);
            vm.runAll(batch);
            got.push(...vm.drain().map((s) => s.reply));
          }
          expect(got).toEqual(expected);
          expect(vm.regs[R_KV_REQUESTS]).toBe(requests.length);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('kv workload: determinism', () => {
  /** Feeds the same datagrams, with a given batch size and drain rhythm; returns memory and registers. */
  function feed(datagrams: readonly (KvRequest | Uint8Array)[], batch: number, drainEvery: number, opts: KvVmOptions) {
    const vm = bootKv(opts);
    let sinceDrain = 0;
    for (let i = 0; i < datagrams.length; i++) {
      if (!vm.send(datagrams[i]!)) {
        // RX full: let the guest catch up (as the real vCPU would), then retry.
        vm.runAll(batch);
        vm.drain();
        expect(vm.send(datagrams[i]!)).toBe(true);
      }
      if (++sinceDrain >= drainEvery) {
        vm.runAll(batch);
        vm.drain();
        sinceDrain = 0;
      }
    }
    vm.runAll(batch);
    vm.drain();
    return { memory: memoryBytes(vm), regs: Array.from(vm.regs) };
  }

  const datagrams: (KvRequest | Uint8Array)[] = [];
  for (let i = 0; i < 2000; i++) {
    const key = (i * 7919) % 300;
    datagrams.push(
      i % 97 === 0 ? Uint8Array.of(i & 0xff) : i % 4 === 0 ? get(i, key) : i % 5 === 0 ? del(i, key) : put(i, key, i),
    );
  }

  it('two fresh VMs fed the same datagrams end with identical memory and registers, however they are batched', () => {
    const a = feed(datagrams, 1, 1, { keys: 512 });
    const b = feed(datagrams, 1000, 300, { keys: 512 });
    expect(b.regs).toEqual(a.regs);
    expect(Buffer.compare(b.memory, a.memory)).toBe(0);
    expect(a.regs[R_STEP_LO]! + a.regs[R_STEP_HI]! * 2 ** 32).toBe(datagrams.length);
    // …and the comparison can fail: one different value changes both.
    const changed = [...datagrams];
    const last = changed.length - 1;
    changed[last] = put(last, (last * 7919) % 300, 12345);
    const c = feed(changed, 1, 1, { keys: 512 });
    expect(c.regs[R_ACC]).not.toBe(a.regs[R_ACC]);
    expect(Buffer.compare(c.memory, a.memory)).not.toBe(0);
  });

  it('does the same whatever the region size (4 KiB regions: every page its own buffer)', () => {
    const a = feed(datagrams.slice(0, 600), 13, 50, { keys: 512 });
    const b = feed(datagrams.slice(0, 600), 13, 50, { keys: 512, regionBytes: 4096 });
    expect(b.regs).toEqual(a.regs);
    expect(Buffer.compare(b.memory, a.memory)).toBe(0);
  });
});
