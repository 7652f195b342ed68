/**
 * A kv guest and its NIC on one thread, no worker: real GuestMemory, the vCPU's DirtyLog and a
 * separate DMA log, the program built exactly as vcpu-worker.ts builds it, and the device. The
 * tests play both the vCPU loop (run up to pending()) and the backend (receive / transmit).
 */
import { decodeKvReply, encodeKvRequest, type KvReply, type KvRequest } from '../../../../shared/src/kv/index.ts';
import { DirtyLog } from '../../../../shared/src/vm/dirty-log.ts';
import { GuestMemory } from '../../../../shared/src/vm/guest-memory.ts';
import { ipv4ToU32, NicDevice } from '../../../../shared/src/vm/nic/index.ts';
import { RegisterFile } from '../../../../shared/src/vm/registers.ts';
import { parseWorkloadSpec } from '../../../../shared/src/vm/workload-spec.ts';
import type { WorkloadProgram } from '../../../../shared/src/vm/workloads/types.ts';

export const MiB = 1024 * 1024;
export const CLIENT = { ip: '10.0.0.2', port: 5000 };
export const NIC_ADDRESS = { ip: '10.0.0.1', port: 7700, mac: '02:00:0a:00:00:01' };

/** A datagram the device handed to send(). */
export interface Sent {
  ip: number;
  port: number;
  payload: Uint8Array;
  /** The payload decoded as a kv reply (null if it is not one). */
  reply: KvReply | null;
}

export interface KvVm {
  memory: GuestMemory;
  /** The vCPU's dirty log (guest stores). */
  dirty: DirtyLog;
  /** The device's dirty log (DMA). */
  dma: DirtyLog;
  regs: Uint32Array;
  program: WorkloadProgram;
  nic: NicDevice;
  /** How many times the device kicked the vCPU. */
  kicks: number;
  /** Puts a request (or raw bytes) in the RX ring from `from`; false if the device dropped it. */
  send(request: KvRequest | Uint8Array, from?: { ip: string; port: number }): boolean;
  /** Plays the vCPU: runs batches of at most `batch` steps while pending() > 0; returns the steps run. */
  runAll(batch?: number): number;
  /** Plays the backend: transmits every filled TX slot and returns what went out. */
  drain(): Sent[];
}

export interface KvVmOptions {
  /** @default 2 MiB */
  memoryBytes?: number;
  /** @default 512 (two table pages) */
  keys?: number;
  /** Guest memory region size (small values exercise multi-region addressing). @default 1 GiB */
  regionBytes?: number;
}

export function bootKv(options: KvVmOptions = {}): KvVm {
  const memoryBytes = options.memoryBytes ?? 2 * MiB;
  const memory = GuestMemory.allocate(
    memoryBytes,
    options.regionBytes === undefined ? {} : { regionBytes: options.regionBytes },
  );
  const { definition, params } = parseWorkloadSpec(`kv:keys=${options.keys ?? 512}`, memoryBytes);
  const registers = new RegisterFile();
  registers.reset(definition.id, 0);
  const dirty = new DirtyLog(memory.pageCount);
  const dma = new DirtyLog(memory.pageCount);
  // As vcpu-worker.ts builds the env, from the memory's shared layout.
  const layout = memory.layout;
  const program = definition.create({
    regs: registers.words,
    mem32: layout.regions.map((r) => new Int32Array(r)),
    mem8: layout.regions.map((r) => new Uint8Array(r)),
    regionPageShift: Math.log2(layout.regionBytes) - 12,
    dirty: dirty.words,
    pageCount: memory.pageCount,
    params,
  });
  const vm: KvVm = {
    memory,
    dirty,
    dma,
    regs: registers.words,
    program,
    nic: undefined as unknown as NicDevice,
    kicks: 0,
    send(request, from = CLIENT) {
      const bytes = request instanceof Uint8Array ? request : encodeKvRequest(request);
      return vm.nic.receive(ipv4ToU32(from.ip), from.port, bytes);
    },
    runAll(batch = Infinity) {
      let steps = 0;
      for (let n = program.pending!(); n > 0; n = program.pending!()) {
        const k = Math.min(n, batch);
        program.run(k);
        steps += k;
      }
      return steps;
    },
    drain() {
      const out: Sent[] = [];
      vm.nic.transmit((ip, port, payload) => out.push({ ip, port, payload, reply: decodeKvReply(payload) }));
      return out;
    },
  };
  vm.nic = new NicDevice({ memory, dmaLog: dma, kick: () => (vm.kicks += 1), address: NIC_ADDRESS });
  return vm;
}

/** Every byte of guest memory, copied. */
export function memoryBytes(vm: KvVm): Uint8Array {
  const out = new Uint8Array(vm.memory.bytes);
  for (let i = 0, at = 0; i < vm.memory.regions.length; i++) {
    const region = vm.memory.region(i);
    out.set(region, at);
    at += region.length;
  }
  return out;
}
