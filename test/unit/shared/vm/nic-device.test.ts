import { describe, expect, it } from 'vitest';
import { KvOp, encodeKvRequest } from '../../../../shared/src/kv/index.ts';
import { DirtyLog } from '../../../../shared/src/vm/dirty-log.ts';
import { GuestMemory } from '../../../../shared/src/vm/guest-memory.ts';
import {
  NIC_PAGES,
  NicDevice,
  RING_SLOTS,
  SLOT_PAYLOAD_BYTES,
  W_RX_USED,
  W_TX_USED,
  ipv4ToU32,
  rxSlotOffset,
  txSlotOffset,
  u32ToIpv4,
  type NicState,
} from '../../../../shared/src/vm/nic/index.ts';
import { MiB, NIC_ADDRESS, bootKv } from './kv-harness.ts';

const code = (c: string) => expect.objectContaining({ code: c });
const get = (id: number, key: number) => encodeKvRequest({ op: KvOp.Get, id, key, value: 0 });
const words = (vm: { memory: GuestMemory }) => new Int32Array(vm.memory.regions[0]!);

describe('ipv4ToU32 / u32ToIpv4', () => {
  it('converts both ways with the first octet in the high byte', () => {
    expect(ipv4ToU32('10.0.0.1')).toBe(0x0a000001);
    expect(ipv4ToU32('255.255.255.255')).toBe(0xffff_ffff);
    expect(ipv4ToU32('0.0.0.0')).toBe(0);
    expect(u32ToIpv4(0xc0a80114)).toBe('192.168.1.20');
    for (const ip of ['127.0.0.1', '1.2.3.4', '200.100.50.25']) expect(u32ToIpv4(ipv4ToU32(ip))).toBe(ip);
  });

  it.each(['256.0.0.1', '1.2.3', '1.2.3.4.5', 'a.b.c.d', ' 1.2.3.4', '1.2.3.-4', '1..2.3', ''])(
    'rejects "%s" with ERR_INVALID_ARGUMENT',
    (ip) => {
      expect(() => ipv4ToU32(ip)).toThrow(code('ERR_INVALID_ARGUMENT'));
    },
  );

  it.each([-1, 2 ** 32, 1.5, NaN])('rejects %s as a u32 address', (n) => {
    expect(() => u32ToIpv4(n)).toThrow(code('ERR_INVALID_ARGUMENT'));
  });
});

describe('NicDevice', () => {
  it('receive() writes the slot (LE header + payload), publishes RX_USED, marks the DMA log only, and kicks', () => {
    const vm = bootKv();
    const payload = Uint8Array.from({ length: 40 }, (_, i) => i + 1);
    expect(vm.nic.receive(ipv4ToU32('1.2.3.4'), 0xbeef, payload)).toBe(true);
    const slot = rxSlotOffset(0);
    const bytes = vm.memory.region(0);
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    expect(view.getUint32(slot, true)).toBe(0x01020304);
    expect(view.getUint16(slot + 4, true)).toBe(0xbeef);
    expect(view.getUint16(slot + 6, true)).toBe(40);
    expect([...bytes.subarray(slot + 8, slot + 48)]).toEqual([...payload]);
    expect(Atomics.load(words(vm), W_RX_USED)).toBe(1);
    expect([...vm.dma.harvest()]).toEqual([0, slot >>> 12]);
    expect(vm.dirty.pendingCount).toBe(0);
    expect(vm.kicks).toBe(1);
    expect(vm.nic.counters).toEqual({ rxPackets: 1, rxBytes: 40, rxDropped: 0, txPackets: 0, txBytes: 0 });
  });

  it('receive() drops (and counts) a datagram larger than a slot, and any when the ring is full', () => {
    const vm = bootKv();
    expect(vm.nic.receive(1, 1, new Uint8Array(SLOT_PAYLOAD_BYTES + 1))).toBe(false);
    expect(vm.nic.receive(1, 1, new Uint8Array(SLOT_PAYLOAD_BYTES))).toBe(true);
    for (let i = 1; i < RING_SLOTS; i++) expect(vm.nic.receive(1, 1, get(i, i))).toBe(true);
    vm.dma.harvest();
    const kicks = vm.kicks;
    expect(vm.nic.receive(1, 1, get(999, 1))).toBe(false);
    expect(Atomics.load(words(vm), W_RX_USED)).toBe(RING_SLOTS);
    expect(vm.dma.pendingCount).toBe(0); // nothing written
    expect(vm.kicks).toBe(kicks);
    expect(vm.nic.counters).toMatchObject({ rxPackets: RING_SLOTS, rxDropped: 2 });
  });

  it('receive() rejects an impossible source address', () => {
    const vm = bootKv();
    expect(() => vm.nic.receive(-1, 1, new Uint8Array(1))).toThrow(code('ERR_INVALID_ARGUMENT'));
    expect(() => vm.nic.receive(1, 65536, new Uint8Array(1))).toThrow(code('ERR_INVALID_ARGUMENT'));
  });

  it('transmit() sends copies of the guest replies, publishes TX_USED and marks page 0 in the DMA log', () => {
    const vm = bootKv();
    vm.send(get(7, 1), { ip: '9.8.7.6', port: 1234 });
    vm.send(get(8, 2), { ip: '9.8.7.6', port: 1235 });
    vm.runAll();
    vm.dma.harvest();
    expect(vm.nic.txPending()).toBe(true);
    const sent: [number, number, Uint8Array][] = [];
    expect(vm.nic.transmit((ip, port, payload) => sent.push([ip, port, payload]))).toBe(2);
    expect(sent.map(([ip, port, p]) => [u32ToIpv4(ip), port, p.length])).toEqual([
      ['9.8.7.6', 1234, 16],
      ['9.8.7.6', 1235, 16],
    ]);
    // A copy: the guest reusing the slot does not change what was handed to send().
    const before = Uint8Array.from(sent[0]![2]);
    vm.memory.region(0).fill(0xee, txSlotOffset(0), txSlotOffset(0) + 64);
    expect(sent[0]![2]).toEqual(before);
    expect(Atomics.load(words(vm), W_TX_USED)).toBe(2);
    expect([...vm.dma.harvest()]).toEqual([0]);
    expect(vm.nic.txPending()).toBe(false);
    expect(vm.nic.transmit(() => expect.unreachable())).toBe(0);
    expect(vm.nic.counters).toMatchObject({ txPackets: 2, txBytes: 32 });
  });

  it('transmit() kicks the vCPU only when requests are waiting in RX', () => {
    const vm = bootKv();
    vm.send(get(1, 1));
    vm.runAll();
    let kicks = vm.kicks;
    vm.drain();
    expect(vm.kicks).toBe(kicks); // RX empty: nothing for the guest to do
    vm.send(get(2, 1));
    vm.runAll();
    vm.nic.receive(1, 1, get(3, 1)); // waiting, not yet consumed
    kicks = vm.kicks;
    vm.drain();
    expect(vm.kicks).toBe(kicks + 1);
  });

  it('a send() that throws leaves that slot and the rest queued', () => {
    const vm = bootKv();
    for (let i = 0; i < 3; i++) vm.send(get(i, i));
    vm.runAll();
    let calls = 0;
    expect(() =>
      vm.nic.transmit(() => {
        calls += 1;
        if (calls === 2) throw new Error('EPERM');
      }),
    ).toThrow('EPERM');
    expect(Atomics.load(words(vm), W_TX_USED)).toBe(1);
    expect(vm.drain().map((s) => s.reply!.id)).toEqual([1, 2]);
  });

  it('waitForTx() resolves at once when replies are pending, and on the guest notify otherwise', async () => {
    const vm = bootKv();
    vm.send(get(1, 1));
    vm.runAll();
    await vm.nic.waitForTx(); // already pending
    vm.drain();

    let resolved = false;
    const waiting = vm.nic.waitForTx().then(() => (resolved = true));
    const second = vm.nic.waitForTx(); // shares the same Atomics.waitAsync
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(resolved).toBe(false);
    vm.send(get(2, 1));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(resolved).toBe(false); // received, but the guest has not replied yet
    vm.runAll(); // stores TX_PRODUCED and notifies
    await waiting;
    await second;
    expect(vm.nic.txPending()).toBe(true);
  });

  it('waitForTx() returns when its signal aborts, with nothing pending', async () => {
    const vm = bootKv();
    const controller = new AbortController();
    const waiting = vm.nic.waitForTx(controller.signal);
    setTimeout(() => controller.abort(), 10);
    await waiting;
    expect(controller.signal.aborted).toBe(true);
    expect(vm.nic.txPending()).toBe(false);
    await vm.nic.waitForTx(controller.signal); // already aborted: returns at once
  });

  it('close() wakes every waitForTx() and leaves a device that receives and sends nothing', async () => {
    const vm = bootKv();
    const controller = new AbortController();
    let ended = 0;
    const waits = [vm.nic.waitForTx(), vm.nic.waitForTx(), vm.nic.waitForTx(controller.signal)].map((wait) =>
      wait.then(() => (ended += 1)),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(ended).toBe(0); // nothing to send: they wait on the guest, which will never notify
    vm.nic.close();
    vm.nic.close(); // idempotent
    await Promise.all(waits);
    expect(ended).toBe(3);
    expect(vm.nic.closed).toBe(true);
    expect(controller.signal.aborted).toBe(false);
    const before = vm.nic.counters;
    expect(vm.nic.rxRoom()).toBe(false);
    expect(vm.nic.receive(1, 1, get(2, 1))).toBe(false);
    expect(vm.nic.txPending()).toBe(false);
    expect(vm.nic.transmit(() => expect.unreachable())).toBe(0);
    await vm.nic.waitForTx(); // returns at once
    expect(vm.nic.counters).toEqual(before);
  });

  it('exportState() and importState() round-trip the counters of the same NIC', () => {
    const a = bootKv();
    for (let i = 0; i < 5; i++) a.send(get(i, i));
    a.nic.receive(1, 1, new Uint8Array(SLOT_PAYLOAD_BYTES + 1));
    a.runAll();
    a.drain();
    const state = a.nic.exportState();
    expect(state).toEqual({
      ...NIC_ADDRESS,
      rxPackets: 5,
      rxBytes: 80,
      rxDropped: 1,
      txPackets: 5,
      txBytes: 80,
      rxUsed: 5,
      txUsed: 5,
    });
    const b = bootKv();
    // The ring indices are checked against guest memory: a VM without a's rings refuses the state.
    expect(() => b.nic.importState(state)).toThrow(code('ERR_STATE_MISMATCH'));
    for (let page = 0; page < NIC_PAGES; page++) b.memory.writePage(page, a.memory.page(page));
    b.nic.importState(JSON.parse(JSON.stringify(state)));
    expect(b.nic.exportState()).toEqual(state);
    expect(b.nic.counters).toEqual(a.nic.counters);
  });

  it.each<[string, (s: NicState) => unknown]>([
    ['not an object', () => 'nic'],
    ['null', () => null],
    ['an array', () => []],
    ['a missing counter', ({ txBytes: _, ...rest }) => rest],
    ['an extra field', (s) => ({ ...s, mtu: 1500 })],
    ['a negative counter', (s) => ({ ...s, rxPackets: -1 })],
    ['a fractional counter', (s) => ({ ...s, txBytes: 1.5 })],
    ['a string counter', (s) => ({ ...s, rxBytes: '5' })],
    ['another IP', (s) => ({ ...s, ip: '10.0.0.9' })],
    ['another port', (s) => ({ ...s, port: 7701 })],
    ['another MAC', (s) => ({ ...s, mac: '02:00:0a:00:00:09' })],
    ['ring indices that are not those in guest memory', (s) => ({ ...s, rxUsed: s.rxUsed + 1 })],
  ])('importState() rejects %s with ERR_STATE_MISMATCH and changes nothing', (_name, mutate) => {
    const vm = bootKv();
    vm.send(get(1, 1));
    const before = vm.nic.exportState();
    expect(() => vm.nic.importState(mutate({ ...before, rxPackets: 100 }))).toThrow(code('ERR_STATE_MISMATCH'));
    expect(vm.nic.exportState()).toEqual(before);
  });

  it.each([
    ['a bad IP', { ...NIC_ADDRESS, ip: '10.0.0.300' }],
    ['port 0', { ...NIC_ADDRESS, port: 0 }],
    ['a bad MAC', { ...NIC_ADDRESS, mac: '02:00:0a:00:00' }],
  ])('refuses to be built with %s', (_name, address) => {
    const memory = GuestMemory.allocate(MiB);
    expect(() => new NicDevice({ memory, dmaLog: new DirtyLog(memory.pageCount), kick: () => {}, address })).toThrow(
      code('ERR_INVALID_ARGUMENT'),
    );
  });

  it('refuses a DMA log that does not cover the memory', () => {
    const memory = GuestMemory.allocate(MiB);
    expect(() => new NicDevice({ memory, dmaLog: new DirtyLog(10), kick: () => {}, address: NIC_ADDRESS })).toThrow(
      code('ERR_INVALID_ARGUMENT'),
    );
  });
});
