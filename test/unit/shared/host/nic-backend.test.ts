/**
 * The NIC backend on real UDP sockets over loopback with a real kv VM (vCPU worker, rings in
 * guest memory): requests in, replies out from the VM's own address; nothing reaches a paused
 * VM until it runs again; the address is free the moment the backend gives it up; what the
 * device writes is in the dirty log; device state (with the NIC) moves to another VM.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@livemig/shared';
import { NicBackend, VmHost } from '@livemig/shared/host';
import { LoopbackAddress, macForIp } from '@livemig/shared/net';
import { decodeKvReply, encodeKvRequest, KvOp, KvStatus, type KvReply } from '@livemig/shared/kv';
import { parseVmSpec, ToyVm } from '@livemig/shared/vm';
import { freeUdpPort } from '../../../helpers/udp.ts';
import { waitUntil } from '../../../helpers/wait.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A client socket that collects replies. */
async function client(): Promise<{
  send(op: KvOp, id: number, key: number, value?: number): void;
  replies: KvReply[];
}> {
  const socket = dgram.createSocket('udp4');
  const replies: KvReply[] = [];
  socket.on('message', (bytes) => {
    const reply = decodeKvReply(bytes);
    if (reply) replies.push(reply);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  cleanups.push(() => void socket.close());
  return {
    replies,
    send: (op, id, key, value = 0) => socket.send(encodeKvRequest({ op, id, key, value }), target.port, '127.0.0.1'),
  };
}

let target = { port: 0 };

/**
 * A kv VM at a free loopback port, still paused, its backend prepared but not holding the
 * address: the destination between Setup and Handoff.
 */
async function preparedKvVm(): Promise<{ vm: ToyVm; net: NicBackend }> {
  target = { port: await freeUdpPort() };
  const spec = parseVmSpec({
    memory: '4MiB',
    init: 'random',
    workload: 'kv:keys=1024',
    nic: `127.0.0.1:${target.port}`,
  });
  const vm = await ToyVm.boot(spec);
  const net = new NicBackend({
    vm,
    mover: new LoopbackAddress({ ip: '127.0.0.1', port: target.port, mac: macForIp('127.0.0.1') }),
    logger: silentLogger(),
  });
  cleanups.push(async () => {
    await net.dispose();
    await vm.destroy();
  });
  await net.prepare();
  return { vm, net };
}

/** A running kv VM whose backend holds its address. */
async function kvVm(): Promise<{ vm: ToyVm; net: NicBackend }> {
  const { vm, net } = await preparedKvVm();
  await net.take();
  vm.start();
  return { vm, net };
}

describe('NicBackend (loopback)', () => {
  it('serves kv requests at the VM address: PUT, GET, DEL, each reply to its request id', async () => {
    await kvVm();
    const c = await client();
    c.send(KvOp.Put, 1, 42, 4242);
    await waitUntil(() => c.replies.length === 1, { what: 'the PUT reply' });
    c.send(KvOp.Get, 2, 42);
    c.send(KvOp.Del, 3, 42);
    c.send(KvOp.Get, 4, 42);
    await waitUntil(() => c.replies.length === 4, { what: 'three more replies' });
    expect(c.replies).toEqual([
      { op: KvOp.Put, status: KvStatus.Ok, id: 1, key: 42, value: 4242 },
      { op: KvOp.Get, status: KvStatus.Ok, id: 2, key: 42, value: 4242 },
      { op: KvOp.Del, status: KvStatus.Ok, id: 3, key: 42, value: 4242 },
      { op: KvOp.Get, status: KvStatus.NotFound, id: 4, key: 42, value: 0 },
    ]);
  });

  it('garbage datagrams (random bytes, oversize, wrong magic) are dropped; the service answers on', async () => {
    const { vm } = await kvVm();
    const c = await client();
    const raw = dgram.createSocket('udp4');
    cleanups.push(() => void raw.close());
    const garbage = [Buffer.alloc(2000, 7), Buffer.from('hello'), Buffer.alloc(16), Buffer.alloc(0)];
    for (const bytes of garbage) raw.send(bytes, target.port, '127.0.0.1');
    await waitUntil(() => vm.nic!.counters.rxPackets + vm.nic!.counters.rxDropped === garbage.length, {
      what: 'the garbage to reach the device',
    });
    expect(vm.nic!.counters.rxDropped).toBe(1); // the oversize one: it never fits a slot
    c.send(KvOp.Put, 1, 3, 33);
    await waitUntil(() => c.replies.length === 1, { what: 'a reply after the garbage' });
    expect(c.replies[0]).toMatchObject({ id: 1, status: KvStatus.Ok, value: 33 });
    expect(vm.nic!.counters.txPackets).toBe(1); // no reply to any of the garbage
  });

  it('a paused VM gets nothing: requests wait in the backend and are answered once it runs', async () => {
    const { vm, net } = await kvVm();
    const c = await client();
    await vm.pause();
    const steps = vm.steps;
    c.send(KvOp.Put, 1, 7, 70);
    await waitUntil(() => net.queued === 1, { what: 'the request to wait in the backend' });
    expect(vm.steps).toBe(steps);
    expect(c.replies).toEqual([]);
    vm.resume();
    await waitUntil(() => c.replies.length === 1, { what: 'the reply after resume' });
    expect(c.replies[0]).toMatchObject({ id: 1, status: KvStatus.Ok, value: 70 });
    expect(net.queued).toBe(0);
  });

  it('more requests than the receive ring holds: the backend keeps the rest, every one is answered', async () => {
    const { vm, net } = await kvVm();
    // Three clients, so no client's socket buffer has to hold more replies than the kernel keeps
    // for it (about 256 small datagrams) before the test reads them.
    const clients = [await client(), await client(), await client()];
    await vm.pause();
    // Sent while the VM is stopped, in chunks the VM's socket buffer surely holds.
    for (let id = 1; id <= 300; id++) {
      clients[id % 3]!.send(KvOp.Put, id, id, id * 3);
      if (id % 50 === 0) await waitUntil(() => net.queued === id, { what: `${id} requests queued` });
    }
    vm.resume();
    const replies = (): number => clients.reduce((n, c) => n + c.replies.length, 0);
    await waitUntil(() => replies() === 300, { what: '300 replies', timeoutMs: 10_000 });
    expect(new Set(clients.flatMap((c) => c.replies.map((r) => r.id))).size).toBe(300);
    expect(vm.nic!.counters.rxPackets).toBe(300);
  });

  it('give() frees the address at once (another socket can bind it) and take() claims it again', async () => {
    const { net } = await kvVm();
    void net.give();
    expect(net.taken).toBe(false);
    const other = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      other.once('error', reject);
      other.bind({ port: target.port, address: '127.0.0.1', exclusive: true }, resolve);
    });
    await new Promise<void>((resolve) => other.close(() => resolve()));
    await net.take();
    const c = await client();
    c.send(KvOp.Get, 9, 1);
    await waitUntil(() => c.replies.length === 1, { what: 'a reply after taking the address back' });
  });

  it('take() holds the port before it first awaits: a request sent before the VM runs is answered when it does', async () => {
    // The destination at Handoff: the VM is still paused when take() is called, and the vCPU
    // resumes right after, in the same tick. The port must be this backend's by then, or the
    // client's datagrams of the next milliseconds are refused instead of queued.
    const { vm, net } = await preparedKvVm();
    const taking = net.take();
    const other = dgram.createSocket('udp4');
    cleanups.push(() => void other.close());
    const refused = await new Promise<string | undefined>((resolve) => {
      other.once('error', (error: NodeJS.ErrnoException) => resolve(error.code));
      other.bind({ port: target.port, address: '127.0.0.1', exclusive: true }, () => resolve(undefined));
    });
    expect(refused).toBe('EADDRINUSE');
    const c = await client();
    c.send(KvOp.Put, 1, 11, 110);
    await waitUntil(() => net.queued === 1, { what: 'the request to wait for the paused VM' });
    expect(c.replies).toEqual([]);
    vm.start();
    await waitUntil(() => c.replies.length === 1, { what: 'the reply once the VM runs' });
    expect(c.replies[0]).toMatchObject({ id: 1, status: KvStatus.Ok, value: 110 });
    await expect(taking).resolves.toMatchObject({ ms: expect.any(Number) });
    expect(net.taken).toBe(true);
  });

  it('take() on a port still held waits for it (retrying) and serves once it is free', async () => {
    const { vm, net } = await preparedKvVm();
    const holder = dgram.createSocket('udp4');
    let held = true;
    cleanups.push(() => {
      if (held) holder.close();
    });
    await new Promise<void>((resolve) =>
      holder.bind({ port: target.port, address: '127.0.0.1', exclusive: true }, resolve),
    );
    let settled = false;
    const taking = net.take().finally(() => (settled = true));
    // The first attempt failed in take()'s own tick; the retries wait on timers.
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    holder.close();
    held = false;
    await taking;
    vm.start();
    const c = await client();
    c.send(KvOp.Get, 5, 1);
    await waitUntil(() => c.replies.length === 1, { what: 'a reply once the port was taken' });
  });

  it('what the device writes into guest memory is in harvestDirty(), like DMA', async () => {
    const { vm } = await kvVm();
    vm.harvestDirty();
    await vm.pause();
    const before = vm.harvestDirty();
    expect(before.length).toBe(0);
    // The device fills an RX slot while the guest is stopped: only the device dirtied memory.
    expect(vm.nic!.receive(0x7f000001, 5555, encodeKvRequest({ op: KvOp.Get, id: 1, key: 1, value: 0 }))).toBe(true);
    expect([...vm.harvestDirty()]).toEqual([0, 1]);
    expect(vm.devicePages()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('device state carries the NIC to another VM; a VM without a NIC refuses it', async () => {
    const { vm } = await kvVm();
    const c = await client();
    c.send(KvOp.Put, 1, 5, 50);
    await waitUntil(() => c.replies.length === 1, { what: 'one reply' });
    await vm.pause();
    const state = vm.exportDeviceState();
    expect(state.nic).toMatchObject({ ip: '127.0.0.1', port: target.port, rxPackets: 1, txPackets: 1 });
    const twin = await ToyVm.createIncoming(vm.spec, { postcopy: false });
    cleanups.push(() => twin.destroy());
    // Its ring indices are checked against the rings in guest memory, which travel as pages.
    expect(() => twin.importDeviceState(state)).toThrow(expect.objectContaining({ code: 'ERR_STATE_MISMATCH' }));
    for (const page of vm.devicePages()) twin.memory.writePage(page, vm.memory.page(page));
    twin.importDeviceState(state);
    expect(twin.nic!.counters).toMatchObject({ rxPackets: 1, txPackets: 1 });
    const plain = await ToyVm.createIncoming(parseVmSpec({ memory: '4MiB' }), { postcopy: false });
    cleanups.push(() => plain.destroy());
    expect(() => plain.importDeviceState(state)).toThrow(expect.objectContaining({ code: 'ERR_STATE_MISMATCH' }));
  });
});

describe('VmHost with NICs', () => {
  it('an address this host does not have is refused before the VM runs (loopback mode)', async () => {
    const host = new VmHost();
    cleanups.push(() => host.removeAll());
    const spec = parseVmSpec({ memory: '4MiB', workload: 'kv:keys=1024', nic: '192.0.2.77:7700' });
    await expect(host.create('vm1', spec)).rejects.toMatchObject({ code: 'ERR_ADDRESS', message: /not on this host/ });
    expect(host.isFree('vm1')).toBe(true);
  });

  it('query-vms tells the address, the mode and that this host holds it', async () => {
    const host = new VmHost();
    cleanups.push(() => host.removeAll());
    const port = await freeUdpPort();
    await host.create('vm1', parseVmSpec({ memory: '4MiB', workload: 'kv:keys=1024', nic: `127.0.0.1:${port}` }));
    expect(host.info('vm1').nic).toEqual({
      address: `127.0.0.1:${port}`,
      mac: '02:00:7f:00:00:01',
      mode: 'loopback',
      taken: true,
    });
  });
});
