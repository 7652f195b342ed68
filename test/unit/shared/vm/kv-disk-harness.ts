/**
 * A kv guest with a NIC and a disk on one thread, no worker (kv-harness.ts plus the disk): real
 * GuestMemory, the vCPU's DirtyLog and one DMA log for both devices, the registers set as
 * vm-build.ts sets them at boot (resolveVmSpec's parameters, with the disk's size, through
 * initRegisters), the program built as vcpu-worker.ts builds it, the NIC device and the disk's
 * device over a real sparse image in a temporary directory. The tests play the vCPU loop (run
 * up to pending()), the NIC's backend (receive / transmit) and the disk's service loop
 * (serveDisk), each on its own, so they choose when the disk completes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlkDevice } from '../../../../shared/src/vm/disk/blk-device.ts';
import { BLOCK_SIZE, DiskImage } from '../../../../shared/src/vm/disk/image.ts';
import { parseVmSpec, resolveVmSpec } from '../../../../shared/src/vm/vm-spec.ts';
import { DISK_RING_PAGE } from '../../../../shared/src/vm/workloads/disk.ts';
import { MiB, NIC_ADDRESS, bootKv, type KvVm, type KvVmOptions } from './kv-harness.ts';

export interface KvDiskVm extends KvVm {
  device: BlkDevice;
  image: DiskImage;
  /** Plays the disk's service loop once: serves every request placed; resolves with how many. */
  serveDisk(): Promise<number>;
  /** Plays vCPU and disk until neither has anything to do; resolves with the steps run. */
  settle(batch?: number): Promise<number>;
  /** The image file's bytes as they are on disk now (read with fs, not through the image). */
  file(): Buffer;
  /** Closes the devices and the image, removes the directory. */
  close(): Promise<void>;
}

export interface KvDiskVmOptions extends KvVmOptions {
  /** @default 1 MiB (256 blocks) */
  diskBytes?: number;
}

/**
 * kv-harness.ts's VM (memory, logs, program, NIC; `kicks` counts the disk's kicks too) with a
 * disk: its registers set as a boot with the disk sets them, the device on a fresh image.
 */
export async function bootKvWithDisk(options: KvDiskVmOptions = {}): Promise<KvDiskVm> {
  const base = bootKv(options);
  const diskBytes = options.diskBytes ?? MiB;
  const spec = parseVmSpec({
    memory: base.memory.bytes,
    workload: `kv:keys=${options.keys ?? 512}`,
    nic: `${NIC_ADDRESS.ip}:${NIC_ADDRESS.port}`,
    disk: diskBytes,
  });
  // As vm-build.ts boots a VM: the workload's registers from resolveVmSpec's parameters.
  const { workload } = resolveVmSpec(spec);
  workload.definition.initRegisters?.(base.regs, workload.params, base.memory.pageCount);
  const dir = mkdtempSync(join(tmpdir(), 'livemig-kv-disk-'));
  const image = await DiskImage.create(join(dir, 'disk.img'), diskBytes);
  const kick = (): void => {
    vm.kicks += 1;
  };
  // A variable, not a literal: the device's components gain fields as the disk work goes on.
  const components = {
    memory: base.memory,
    dmaLog: base.dma,
    image,
    sizeBytes: diskBytes,
    ringPage: DISK_RING_PAGE,
    kick,
  };
  const vm: KvDiskVm = Object.assign(base, {
    device: new BlkDevice(components),
    image,
    serveDisk: () => vm.device.serve(),
    async settle(batch = Infinity) {
      let steps = 0;
      for (;;) {
        const ran = vm.runAll(batch);
        steps += ran;
        const served = await vm.serveDisk();
        if (ran === 0 && served === 0) return steps;
      }
    },
    file: () => readFileSync(image.path),
    async close() {
      vm.nic.close();
      vm.device.close();
      await image.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
  return vm;
}

/** Block `block` of an image file's bytes (zeros past its end: a sparse file may be shorter). */
export function blockOf(file: Uint8Array, block: number): Uint8Array {
  const out = new Uint8Array(BLOCK_SIZE);
  out.set(file.subarray(block * BLOCK_SIZE, (block + 1) * BLOCK_SIZE));
  return out;
}
