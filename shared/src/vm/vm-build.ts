/**
 * Building a ToyVm: this module owns how the parts come to be, and nothing after that — the
 * parts go to the ToyVm, which owns them from then on.
 *
 *   boot      the spec is re-parsed (canonical), memory allocated and initialised (--init, then
 *             the workload's reserved area zeroed as a device reset would leave it), registers
 *             reset and seeded, the vCPU worker started and parked.
 *   incoming  zero memory (nothing to initialise: the migration fills it), registers left
 *             unloaded so the VM cannot start before a CPU state is imported; with post-copy a
 *             presence map with every page absent.
 * Either way the NIC (spec.nic) is built over the same memory with its own DMA dirty log, and
 * its interrupt is the vCPU's kick. So is the disk (spec.disk): a new sparse image at
 * options.diskPath (default: a fresh temporary directory the VM owns), its device serving the
 * ring at DISK_RING_PAGE (after the NIC's pages). NIC and disk share the DMA log: both write it
 * from the agent's event loop, one thread, so the log still has one writer at a time.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MigrationError } from '../errors.ts';
import { DeviceBus } from './devices.ts';
import { BlkDevice } from './disk/blk-device.ts';
import { ALLOC_MAP_SUFFIX, DiskImage } from './disk/image.ts';
import { VirtualDisk } from './disk/virtual-disk.ts';
import { DISK_RING_PAGE } from './workloads/disk.ts';
import { DirtyLog } from './dirty-log.ts';
import { GuestMemory, type GuestMemoryOptions } from './guest-memory.ts';
import { initialiseMemory } from './init.ts';
import { macForIp } from './nic/mac.ts';
import { NicDevice } from './nic/nic-device.ts';
import { PresenceMap } from './presence-map.ts';
import { deriveKey, hashString } from './prng.ts';
import { R_KEY, RegisterFile } from './registers.ts';
import { Vcpu } from './vcpu.ts';
import { parseVmSpec, resolveVmSpec, type VmSpec } from './vm-spec.ts';
import type { WorkloadSpec } from './workload-spec.ts';

/** How to build: a fresh boot, or an empty VM to migrate into (optionally post-copy). */
export interface BuildMode {
  incoming: boolean;
  /** Every page starts absent (only with incoming). */
  postcopy: boolean;
}

/** Options for building a VM. */
export interface BuildOptions extends GuestMemoryOptions {
  /**
   * Where a VM with a disk creates its image (must not exist; removed with the VM).
   * @default <a new temporary directory>/disk.img, the directory removed with the VM
   */
  diskPath?: string;
  /**
   * `create` a new image at diskPath; or `later`: the image exists elsewhere's hold (shared
   * storage: the source still runs on it) and is opened at diskPath by VirtualDisk.attach()
   * before the VM runs. @default 'create'
   */
  diskImage?: 'create' | 'later';
}

/** Everything a ToyVm is made of. */
export interface VmParts {
  /** The canonical spec. */
  spec: VmSpec;
  workload: WorkloadSpec;
  memory: GuestMemory;
  /** The vCPU's dirty log. */
  dirtyLog: DirtyLog;
  /** The NIC's own dirty log (one writer per log), or null without a NIC. */
  dmaLog: DirtyLog | null;
  nic: NicDevice | null;
  /** The virtual disk, or null. */
  disk: VirtualDisk | null;
  registers: RegisterFile;
  devices: DeviceBus;
  /** Post-copy destinations only. */
  presence: PresenceMap | null;
  vcpu: Vcpu;
  /** Identifies memory size + workload in the register file (imports from other VMs are refused). */
  specHash: number;
  /** ms spent initialising memory (0 for incoming VMs). */
  initMs: number;
}

/** Builds the parts of a VM from its spec; the vCPU is started and parked. */
export async function buildVm(input: VmSpec, options: BuildOptions, mode: BuildMode): Promise<VmParts> {
  const spec = parseVmSpec({
    memory: input.memoryBytes,
    init: input.init,
    workload: input.workload,
    seed: input.seed,
    nic: input.nic,
    disk: input.disk,
  });
  const { init, workload } = resolveVmSpec(spec);
  const memory = GuestMemory.allocate(spec.memoryBytes, options);
  const t0 = performance.now();
  if (!mode.incoming) {
    await initialiseMemory(memory, init, spec.seed);
    // The workload's own area (NIC rings, kv table) starts zeroed, as a device reset and a
    // booting guest would leave it, whatever --init put there.
    const reserved = workload.definition.reservedBytes?.(workload.params) ?? 0;
    for (let p = 0; p < Math.ceil(reserved / memory.pageSize); p++) memory.page(p).fill(0);
  }
  const initMs = mode.incoming ? 0 : performance.now() - t0;
  const specHash = hashString(`${spec.memoryBytes}|${spec.workload}`);
  const registers = new RegisterFile();
  if (!mode.incoming) {
    registers.reset(workload.definition.id, specHash);
    registers.words[R_KEY] = deriveKey(spec.seed, 1);
    workload.definition.initRegisters?.(registers.words, workload.params, memory.pageCount);
  }
  const devices = new DeviceBus();
  const dirtyLog = new DirtyLog(memory.pageCount);
  const dmaLog = spec.nic || spec.disk ? new DirtyLog(memory.pageCount) : null;
  const presence = mode.postcopy ? new PresenceMap(memory.pageCount) : null;
  const vcpuInit = {
    memory: memory.layout,
    dirty: dirtyLog.buffer,
    presence: presence?.buffer ?? null,
    registers: registers.buffer,
    devices: devices.buffer,
    workload: spec.workload,
  };
  // An incoming VM's vCPU comes up while the migration runs (ToyVm.vcpuReady before it may run).
  const vcpu = mode.incoming ? Vcpu.spawn(vcpuInit) : await Vcpu.start(vcpuInit);
  let nic: NicDevice | null = null;
  if (dmaLog && spec.nic) {
    const [ip = '', port] = spec.nic.split(':');
    try {
      nic = new NicDevice({
        memory,
        dmaLog,
        kick: () => vcpu.kick(),
        address: { ip, port: Number(port), mac: macForIp(ip) },
      });
    } catch (error) {
      await vcpu.destroy();
      throw error;
    }
  }
  let disk: VirtualDisk | null = null;
  if (dmaLog && spec.disk !== null) {
    try {
      const kick = (): void => vcpu.kick();
      if (options.diskImage === 'later') {
        if (options.diskPath === undefined)
          throw new MigrationError('ERR_INTERNAL', 'an image opened later needs its path');
        const device = new BlkDevice({
          memory,
          dmaLog,
          image: null,
          sizeBytes: spec.disk,
          ringPage: DISK_RING_PAGE,
          kick,
        });
        disk = new VirtualDisk(device, options.diskPath, null);
      } else {
        disk = await createDisk(spec.disk, memory, dmaLog, kick, options.diskPath);
      }
    } catch (error) {
      nic?.close();
      await vcpu.destroy();
      throw error;
    }
  }
  return { spec, workload, memory, dirtyLog, dmaLog, nic, disk, registers, devices, presence, vcpu, specHash, initMs };
}

async function createDisk(
  sizeBytes: number,
  memory: GuestMemory,
  dmaLog: DirtyLog,
  kick: () => void,
  path: string | undefined,
): Promise<VirtualDisk> {
  const ownedDir = path === undefined ? await fs.mkdtemp(join(tmpdir(), 'livemig-disk-')) : null;
  const imagePath = path ?? join(ownedDir!, 'disk.img');
  let image: DiskImage | undefined;
  try {
    image = await DiskImage.create(imagePath, sizeBytes);
    const device = new BlkDevice({ memory, dmaLog, image, sizeBytes, ringPage: DISK_RING_PAGE, kick });
    return new VirtualDisk(device, imagePath, ownedDir);
  } catch (error) {
    if (image) {
      // Ours: created just now (create() refuses an existing file and removes what it made).
      await image.close().catch(() => undefined);
      await fs.rm(imagePath, { force: true });
      await fs.rm(imagePath + ALLOC_MAP_SUFFIX, { force: true });
    }
    if (ownedDir) await fs.rm(ownedDir, { recursive: true, force: true });
    throw error;
  }
}
