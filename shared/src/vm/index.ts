/**
 * @livemig/shared/vm — the toy VM that livemig migrates: paged guest memory in
 * SharedArrayBuffer regions, a dirty log harvested per round, a post-copy presence map, a vCPU
 * in a worker thread running a deterministic workload, devices, a memory digest, and the
 * determinism oracle that proves a migration lost nothing.
 *
 * Start at ToyVm (toy-vm.ts):
 *   const vm = await ToyVm.boot(parseVmSpec({ memory: '1GiB', init: 'random', workload: 'hotset:wss=64MiB,rate=20000', seed: 7 }));
 *   vm.start();  …  const dirty = vm.harvestDirty();  …  await vm.pause();  vm.exportCpuState();
 *
 * Everything exported here is the contract with the migration code; internal layouts (control
 * block, register indices) are not exported.
 */
export {
  PAGE_SIZE,
  PAGE_SHIFT,
  MIN_MEMORY_BYTES,
  MAX_MEMORY_BYTES,
  DEFAULT_REGION_BYTES,
  GuestMemory,
} from './guest-memory.ts';
export type { GuestMemoryLayout, GuestMemoryOptions } from './guest-memory.ts';
export { Bitmap, popcount32 } from './bitmap.ts';
export type { ReadonlyBitmap } from './bitmap.ts';
export { DirtyLog } from './dirty-log.ts';
export { parseVmSpec, parseNicAddress, parseDiskSize, DEFAULT_SEED } from './vm-spec.ts';
export type { VmSpec, VmSpecInput } from './vm-spec.ts';
export { parseInitSpec, formatInitSpec } from './init.ts';
export type { InitSpec } from './init.ts';
export { parseWorkloadSpec, formatWorkloadSpec, workloadHelp, workloadSummary } from './workload-spec.ts';
export type { WorkloadSpec } from './workload-spec.ts';
export { WORKLOADS, findWorkload } from './workloads/index.ts';
export type { WorkloadDefinition, WorkloadParam, WorkloadParams } from './workloads/index.ts';
export { CPU_STATE_BYTES } from './registers.ts';
export { DEVICE_TICK_STEPS, CONSOLE_EVERY_TICKS } from './devices.ts';
export type { DeviceState } from './devices.ts';
export { digestMemory, hashPage, PageDigestLedger } from './digest.ts';
export {
  DIRTY_RATE_LIMITS,
  MB,
  choosePages,
  countChanged,
  estimateDirtyRate,
  hashSamples,
  measureDirtyRate,
  rateUpperBound95,
  resolveDirtyRateOptions,
  samplePageCount,
} from './dirty-rate.ts';
export type {
  DirtyCurvePoint,
  DirtyRateComponents,
  DirtyRateEstimate,
  DirtyRateMeasurement,
  DirtyRateOptions,
  ResolvedDirtyRateOptions,
  SampledMemory,
} from './dirty-rate.ts';
export { unionSorted } from './page-list.ts';
export { ToyVm } from './toy-vm.ts';
export { PresenceMap } from './presence-map.ts';
export { PageClaims, CLAIM_MAIN, CLAIM_FAULT_THREAD } from './page-claims.ts';
export type { ClaimOwner } from './page-claims.ts';
export { FaultRing } from './fault-ring.ts';
export type { VmStatus, VmStats, ToyVmOptions, IncomingOptions } from './toy-vm.ts';
export type { PageFault } from './vcpu.ts';
export { vcpuWorkerEntry } from './vcpu.ts';
export { snapshotVm, diffSnapshots, runReference, cloneVm, checkAbInvariant } from './oracle.ts';
export type { VmSnapshot, AbCheck } from './oracle.ts';
export { startPrefault } from './prefault.ts';
export { processThreads, ThreadRegistry } from './thread-registry.ts';
export type { ThreadHandle, ThreadReading, ThreadSnapshot } from './thread-registry.ts';
export type { Prefault } from './prefault.ts';
export { cpuStateDigest, deviceStateDigest, canonicalJson, mismatchedSections } from './section-digest.ts';
