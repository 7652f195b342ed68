/**
 * ToyVm: the machine livemig migrates — guest memory, dirty log, presence map (post-copy
 * destinations), register file, devices and one vCPU worker — behind a small API. This file
 * owns the lifecycle (running ⇄ paused → destroyed, status listeners) and the dirty-page view;
 * the rest is delegated, one concern per module, and ToyVm's methods stay the API:
 *   vm-build.ts       building the parts (boot, createIncoming)
 *   vm-presence.ts    post-copy presence (isPresent, markPresent, installPage, onFault, …)
 *   machine-state.ts  CPU and device state export/import and stateDigest()
 *   run-rate.ts       the running-time and write-rate figures of stats()
 *
 * Lifecycle: boot() (memory initialised, vCPU parked) or createIncoming() (zero memory, no CPU
 * state yet, optionally every page absent) → start()/resume() ⇄ pause() → destroy().
 * Ownership: the host side (this object, on the agent's event loop) owns everything except
 * what the vCPU writes: guest memory, the dirty log, registers and devices while it runs.
 * State export/import is only allowed while paused, when the vCPU has nothing in flight.
 * destroy() ends the worker, then lets go of everything: the memory's regions (a prefault
 * worker on them stops), the NIC's views, every listener — so the memory is freed even if
 * someone still holds this object — and asks V8 to collect (reclaim.ts).
 *
 * What a pre-copy source uses: harvestDirty() each round (also OR-ed into the ever-dirty map),
 * possiblyNonZero() for round 0, memory.page(n) views to send, pause() for stop-and-copy, then
 * exportCpuState()/exportDeviceState()/stateDigest()/digest(). A destination: createIncoming(),
 * memory.writePage() (pre-copy; or raw views + memory.markTouched()) or installPage()
 * (post-copy, wakes a vCPU blocked on that page), onFault() to request pages,
 * importCpuState()/importDeviceState(), stateDigest() to compare, then start().
 */
import { MigrationError } from '../errors.ts';
import type { ReadonlyBitmap } from './bitmap.ts';
import type { DeviceState } from './devices.ts';
import { digestMemory } from './digest.ts';
import type { DirtyLog } from './dirty-log.ts';
import type { GuestMemory, GuestMemoryLayout } from './guest-memory.ts';
import { MachineState } from './machine-state.ts';
import type { VirtualDisk } from './disk/virtual-disk.ts';
import { digestDisk } from './disk/digest.ts';
import { NIC_PAGES } from './nic/layout.ts';
import type { RegisterFile } from './registers.ts';
import { DISK_BUFFER_PAGE, DISK_RING_PAGE, R_DISK_MISMATCH } from './workloads/disk.ts';
import type { NicDevice } from './nic/nic-device.ts';
import { unionSorted } from './page-list.ts';
import { reclaimSoon } from './reclaim.ts';
import { RunRate } from './run-rate.ts';
import type { PageFault, Vcpu } from './vcpu.ts';
import { buildVm, type BuildMode, type BuildOptions, type VmParts } from './vm-build.ts';
import { PagePresence } from './vm-presence.ts';
import type { VmSpec } from './vm-spec.ts';
import type { WorkloadSpec } from './workload-spec.ts';

/** Where the VM is in its lifecycle. */
export type VmStatus = 'running' | 'paused' | 'destroyed' | 'crashed';

/** Options for boot / createIncoming: the region size (tests) and where a disk's image goes. */
export type ToyVmOptions = BuildOptions;

/** Options for createIncoming. */
export interface IncomingOptions extends ToyVmOptions {
  /** Every page starts absent; a vCPU access to an absent page faults until it is installed. */
  postcopy: boolean;
}

/** Live figures for display and reports. */
export interface VmStats {
  status: VmStatus;
  /** Step counter (includes steps run before an import). */
  steps: number;
  /** Guest page writes this VM executed itself (steps it ran × writes per step). */
  pageWrites: number;
  /** Wall time this VM spent running, ms. */
  runningMs: number;
  /** pageWrites / runningMs, per second. */
  averageWriteRatePagesPerSec: number;
  /** Write rate over about the last second (sampled when stats() is called). */
  writeRatePagesPerSec: number;
  /** The workload's requested rate (0 = as fast as it can; idle asks for ticks, not writes). */
  requestedWriteRatePagesPerSec: number;
  /** Throttle in force (1 = none). */
  throttle: number;
  /** Post-copy: faults raised, faults the host read too late to see (ring overflow), total ms blocked. */
  faults: number;
  faultsLost: number;
  faultBlockedMs: number;
  /** Post-copy: pages not yet present. */
  missingPages: number;
}

/** A running (or paused) toy VM. */
export class ToyVm {
  /** The canonical spec this VM was built from. */
  readonly spec: VmSpec;
  /** Guest memory (released by destroy()). */
  readonly memory: GuestMemory;
  /** The dirty log (harvest through harvestDirty() so the ever-dirty map stays exact). */
  readonly dirtyLog: DirtyLog;
  /** The parsed workload. */
  readonly workload: WorkloadSpec;
  /**
   * The virtual NIC (spec.nic), or null. Its backend (host/net) feeds it datagrams; it writes
   * guest memory like DMA, into its own dirty log, which harvestDirty() merges. Closed by destroy().
   */
  readonly nic: NicDevice | null;
  /** ms spent initialising memory at boot (0 for incoming VMs). */
  readonly initMs: number;
  readonly #dmaLog: DirtyLog | null;
  readonly #disk: VirtualDisk | null;
  readonly #registers: RegisterFile;
  readonly #diskStop = new AbortController();
  readonly #statusListeners = new Set<(status: 'running' | 'paused' | 'destroyed') => void>();
  readonly #vcpu: Vcpu;
  readonly #presence: PagePresence;
  readonly #state: MachineState;
  readonly #runRate = new RunRate();
  #status: 'running' | 'paused' | 'destroyed' = 'paused';

  private constructor(parts: VmParts) {
    this.spec = parts.spec;
    this.memory = parts.memory;
    this.dirtyLog = parts.dirtyLog;
    this.workload = parts.workload;
    this.nic = parts.nic;
    this.initMs = parts.initMs;
    this.#dmaLog = parts.dmaLog;
    this.#disk = parts.disk;
    this.#registers = parts.registers;
    if (parts.disk) {
      // A file-system error is the guest's I/O error (a status in its ring); anything else is a
      // bug in the device: the VM halts as crashed, never taking its agent down with it.
      void this.#serveDisk(parts.disk).catch((error: unknown) =>
        this.#vcpu.haltWith(
          new MigrationError('ERR_DEVICE_FAILED', `the disk device failed: ${String(error)}`, { cause: error }),
        ),
      );
    }
    this.#vcpu = parts.vcpu;
    this.#presence = new PagePresence(parts.memory, parts.presence, parts.vcpu);
    this.#state = new MachineState({
      registers: parts.registers,
      devices: parts.devices,
      nic: parts.nic,
      disk: parts.disk?.device ?? null,
      vcpu: parts.vcpu,
      workloadId: parts.workload.definition.id,
      specHash: parts.specHash,
    });
  }

  /** Boots a VM: memory initialised from the spec, registers reset, vCPU parked ('paused') until start(). */
  static async boot(spec: VmSpec, options: ToyVmOptions = {}): Promise<ToyVm> {
    return ToyVm.#create(spec, options, { incoming: false, postcopy: false });
  }

  /**
   * An empty VM to migrate into: zero memory, no CPU state (start() refuses until
   * importCpuState()), vCPU parked. With postcopy, every page is absent until installPage() /
   * markPresent().
   */
  static async createIncoming(spec: VmSpec, options: IncomingOptions): Promise<ToyVm> {
    return ToyVm.#create(spec, options, { incoming: true, postcopy: options.postcopy });
  }

  static async #create(spec: VmSpec, options: ToyVmOptions, mode: BuildMode): Promise<ToyVm> {
    return new ToyVm(await buildVm(spec, options, mode));
  }

  /** 'running', 'paused', 'destroyed', or 'crashed' (the vCPU worker died, or a device failed; see failure). */
  get status(): VmStatus {
    if (this.#status !== 'destroyed' && this.#vcpu.failure) return 'crashed';
    return this.#status;
  }

  /** Why the vCPU died, if it did. */
  get failure(): MigrationError | undefined {
    return this.#vcpu.failure;
  }

  /**
   * Resolves once the vCPU worker is up (at once for a booted VM); rejects with why it died. An
   * incoming VM's worker starts while the migration runs: the destination awaits this before it
   * says it can run the VM.
   */
  vcpuReady(): Promise<void> {
    return this.#vcpu.ready;
  }

  /** The step counter, live (read from shared memory, no round trip). */
  get steps(): number {
    return this.#vcpu.steps;
  }

  /** The throttle in force (1 = none). */
  get throttle(): number {
    return this.#vcpu.throttle;
  }

  /** Starts the vCPU (same as resume()). */
  start(): void {
    this.resume();
  }

  /** Lets a paused VM run. Throws ERR_VM_STATE if it is running, destroyed, or has no CPU state yet. */
  resume(): void {
    this.#expect('paused', 'resume');
    if (!this.#state.cpuLoaded) {
      throw new MigrationError('ERR_VM_STATE', 'cannot start an incoming VM before its CPU state is imported');
    }
    this.#markRunning(); // before the worker moves, so the step count it records is exact
    this.#vcpu.resume();
  }

  /** Resolves once the vCPU is quiesced (no store in flight). Resolves at once if already paused. */
  async pause(): Promise<void> {
    if (this.#status === 'paused') return;
    this.#expect('running', 'pause');
    await this.#vcpu.pause();
    await this.#drainDisk();
    if (this.#status === 'running') this.#markPaused();
  }

  /**
   * Runs exactly n more steps, then pauses (resolves early if pause() is called meanwhile).
   * Paced like a normal run unless fullSpeed, which ignores the workload's rate and the throttle
   * (the state after n steps is the same either way).
   */
  async runSteps(n: number, options: { fullSpeed?: boolean } = {}): Promise<void> {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `step count must be a non-negative integer, got ${n}`);
    }
    this.#expect('paused', 'run steps');
    if (!this.#state.cpuLoaded) {
      throw new MigrationError('ERR_VM_STATE', 'cannot run an incoming VM before its CPU state is imported');
    }
    const target = this.steps + n;
    this.#markRunning();
    try {
      await this.#vcpu.runUntil(target, options);
      await this.#drainDisk();
    } finally {
      if (this.#status === 'running') this.#markPaused();
    }
  }

  /** Lets the vCPU run `fraction` of wall time (0 < fraction ≤ 1; 1 = unthrottled), for auto-converge. */
  setThrottle(fraction: number): void {
    this.#alive('throttle');
    this.#vcpu.setThrottle(fraction);
  }

  /** Pages dirtied since the previous harvest, ascending; they are cleared and added to possiblyNonZero(). */
  harvestDirty(): Uint32Array {
    this.#alive('harvest the dirty log of');
    const byGuest = this.dirtyLog.harvest(this.memory.touched);
    return this.#dmaLog ? unionSorted(byGuest, this.#dmaLog.harvest(this.memory.touched)) : byGuest;
  }

  /**
   * Pages a device touches on its own (the NIC's rings; the disk's ring and buffer page): a
   * post-copy switchover sends them before the destination resumes, because the destination's
   * device must never read or write an absent page.
   */
  devicePages(): number[] {
    const pages = this.nic ? Array.from({ length: NIC_PAGES }, (_, p) => p) : [];
    // The disk's ring, and the buffer page its requests move blocks through (disk workload).
    if (this.#disk) pages.push(DISK_RING_PAGE, DISK_RING_PAGE + 1, DISK_RING_PAGE + 2, DISK_BUFFER_PAGE);
    return pages;
  }

  /** Calls listener on every running ⇄ paused change and on destroy. Returns an unsubscribe function. */
  onStatus(listener: (status: 'running' | 'paused' | 'destroyed') => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  /**
   * Pages that may be non-zero: non-zero after init ∪ written by the host ∪ ever harvested ∪
   * dirty now. Every other page is known zero (pre-copy round 0 need not read it). A live map,
   * exact right after harvestDirty(); clone() it to keep a snapshot. (On a post-copy
   * destination, absent pages are not included: they are not known yet.) Host writes that
   * bypass memory.writePage() count only if the writer called memory.markTouched().
   */
  possiblyNonZero(): ReadonlyBitmap {
    this.dirtyLog.peekInto(this.memory.touched);
    this.#dmaLog?.peekInto(this.memory.touched);
    return this.memory.touched;
  }

  /** True if this VM tracks page presence (a post-copy destination). */
  get postcopy(): boolean {
    return this.#presence.tracked;
  }

  /** Pages not yet present (0 unless a post-copy destination). */
  get missingPages(): number {
    return this.#presence.missing;
  }

  /** True if page n is present (always, unless a post-copy destination). */
  isPresent(n: number): boolean {
    return this.#presence.isPresent(n);
  }

  /** Marks pages whose bytes are already in memory (e.g. via memory.writePage) as present, waking a vCPU blocked on one. */
  markPresent(pages: Iterable<number>): void {
    this.#presence.markPresent(pages);
  }

  /** Marks present every page not in `absent` (a post-copy switchover's map), waking a vCPU blocked on one. */
  markPresentExcept(absent: ReadonlyBitmap): void {
    this.#presence.markPresentExcept(absent);
  }

  /**
   * Post-copy: copies bytes into page n, marks it present and wakes a vCPU blocked on it.
   * Returns false (and writes nothing) if the page is already present — the VM may have written
   * it since, so a late copy must never overwrite it.
   */
  installPage(n: number, bytes: Uint8Array): boolean {
    return this.#presence.installPage(n, bytes);
  }

  /**
   * What a post-copy fault thread shares with this VM (null unless tracking presence): guest
   * memory, the presence map and the vCPU's control block (its fault ring and wake-up word).
   */
  faultThreadBuffers(): { memory: GuestMemoryLayout; presence: SharedArrayBuffer; control: SharedArrayBuffer } | null {
    const presence = this.#presence.buffer;
    return presence ? { memory: this.memory.layout, presence, control: this.#vcpu.controlBuffer } : null;
  }

  /** Marks every page present (post-copy complete): the vCPU drops all presence checks. */
  markAllPresent(): void {
    this.#presence.markAllPresent();
  }

  /** Calls listener(fault) for each post-copy fault (page, time). Returns an unsubscribe function. */
  onFault(listener: (fault: PageFault) => void): () => void {
    return this.#presence.onFault(listener);
  }

  /** Calls listener if the vCPU worker dies. Returns an unsubscribe function. */
  onCrash(listener: (error: MigrationError) => void): () => void {
    return this.#vcpu.onCrash(listener);
  }

  /** The register file as bytes (CPU_STATE_BYTES). Paused only. */
  exportCpuState(): Uint8Array {
    this.#expect('paused', 'export CPU state of');
    return this.#state.exportCpu();
  }

  /** Loads CPU state exported by a VM with the same workload and memory size. Paused only; ERR_STATE_MISMATCH if it does not fit. */
  importCpuState(bytes: Uint8Array): void {
    this.#expect('paused', 'import CPU state into');
    this.#state.importCpu(bytes);
  }

  /** Device state as plain data (msgpack-able). Paused only. */
  exportDeviceState(): DeviceState {
    this.#expect('paused', 'export device state of');
    return this.#state.exportDevices();
  }

  /** Loads device state from exportDeviceState(). Paused only; ERR_STATE_MISMATCH if malformed. */
  importDeviceState(state: unknown): void {
    this.#expect('paused', 'import device state into');
    this.#state.importDevices(state);
  }

  /**
   * sha256 (hex) of the CPU state and the device state, canonically encoded (machine-state.ts).
   * Paused only. A VM that imported another's exported CPU and device state has the same
   * digest as the exporter; a changed register byte or device field changes it.
   */
  stateDigest(): string {
    this.#expect('paused', 'digest the state of');
    return this.#state.digest();
  }

  /** The console output still in the device's ring (for display). */
  get consoleTail(): string {
    return this.#state.consoleTail;
  }

  /** xxhash64 of all memory in page order (hex). A consistent snapshot only while paused. */
  async digest(): Promise<string> {
    this.#alive('digest');
    return digestMemory(this.memory);
  }

  /** The disk image's path, size and allocated bytes, or null for a VM without a disk. */
  get disk(): { path: string; sizeBytes: number; allocatedBytes: number } | null {
    const disk = this.#disk;
    if (!disk) return null;
    const allocatedBytes = disk.attached ? disk.image.allocatedBytes : 0;
    return { path: disk.path, sizeBytes: disk.sizeBytes, allocatedBytes };
  }

  /** The VM's disk (device, image, attach/detach) for a migration, or null without one. */
  get virtualDisk(): VirtualDisk | null {
    return this.#disk;
  }

  /** Blocks the guest's disk workload found wrong on read-back (register R_DISK_MISMATCH), or null without one. */
  get diskMismatches(): number | null {
    // Register 10 is the disk workload's count; kv with a disk keeps its request count there.
    return this.#disk && this.workload.definition.name === 'disk' ? this.#registers.words[R_DISK_MISMATCH]! : null;
  }

  /**
   * The disk digest (disk/digest.ts; hex), or null for a VM without a disk. Paused only: pause()
   * has drained the device, so nothing writes the image.
   */
  async diskDigest(): Promise<string | null> {
    this.#expect('paused', 'digest the disk of');
    return this.#disk ? digestDisk(this.#disk.image) : null;
  }

  /** Live figures. The recent write rate is measured between calls (about a 1 s window). */
  stats(): VmStats {
    const steps = this.steps;
    const figures = this.#runRate.sample(steps);
    const perStep = this.workload.definition.writesPerStep;
    const faults = this.#vcpu.faults;
    return {
      status: this.status,
      steps,
      pageWrites: figures.ranSteps * perStep,
      runningMs: figures.runningMs,
      averageWriteRatePagesPerSec: figures.averageStepsPerSec * perStep,
      writeRatePagesPerSec: figures.recentStepsPerSec * perStep,
      requestedWriteRatePagesPerSec: this.workload.definition.stepsPerSecond(this.workload.params) * perStep,
      throttle: this.throttle,
      faults: faults.count,
      faultsLost: faults.lost,
      faultBlockedMs: faults.blockedMs,
      missingPages: this.missingPages,
    };
  }

  /**
   * Stops the vCPU worker (terminated if it does not exit within 2 s) and releases the VM: the
   * guest memory's regions (a prefault worker on them stops), the NIC's views of them, the
   * status, fault and crash listeners; then asks V8 for a collection so the memory goes back to
   * the OS now rather than at some later GC (reclaim.ts). Idempotent.
   */
  async destroy(): Promise<void> {
    if (this.#status === 'destroyed') return this.#vcpu.destroy();
    if (this.#status === 'running') this.#markPaused();
    this.#status = 'destroyed';
    this.#tell('destroyed');
    this.#statusListeners.clear();
    try {
      await this.#vcpu.destroy();
    } finally {
      this.nic?.close();
      await this.#closeDisk();
      this.memory.release();
      reclaimSoon(this.spec.memoryBytes);
    }
  }

  /**
   * The disk's service loop: waits for the guest's kick (Atomics.waitAsync, no polling) and
   * serves what it placed, until the VM is destroyed.
   */
  async #serveDisk(disk: VirtualDisk): Promise<void> {
    const signal = this.#diskStop.signal;
    while (!signal.aborted && !disk.device.closed) {
      await disk.device.waitForRequests(signal);
      if (disk.device.pending()) await disk.device.serve();
    }
  }

  /**
   * Completes every disk request the guest placed (the vCPU is paused: it places no more), so a
   * paused VM never has I/O in flight — what makes the state at step N independent of I/O
   * timing (workloads/disk.ts), and what a migration will need (QEMU drains block devices on
   * stop).
   */
  async #drainDisk(): Promise<void> {
    if (this.#disk && !this.#disk.device.closed) await this.#disk.device.serve();
  }

  /** Stops the device, closes the image and removes it (with its map, and the directory the VM made for it) unless kept. */
  async #closeDisk(): Promise<void> {
    if (!this.#disk) return;
    this.#diskStop.abort();
    await this.#disk.close();
  }

  #markRunning(): void {
    this.#status = 'running';
    this.#runRate.started(this.steps);
    this.#tell('running');
  }

  #markPaused(): void {
    this.#status = 'paused';
    this.#runRate.stopped(this.steps);
    this.#tell('paused');
  }

  #tell(status: 'running' | 'paused' | 'destroyed'): void {
    for (const listener of this.#statusListeners) listener(status);
  }

  #expect(status: 'running' | 'paused', action: string): void {
    const current = this.status;
    if (current !== status) {
      throw new MigrationError('ERR_VM_STATE', `cannot ${action} a VM that is ${current}`, {
        cause: this.#vcpu.failure,
      });
    }
  }

  #alive(action: string): void {
    if (this.#status === 'destroyed') throw new MigrationError('ERR_VM_STATE', `cannot ${action} a destroyed VM`);
  }
}
