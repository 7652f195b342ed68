/**
 * The virtual disk: a raw sparse image with its allocation map and block dirty log
 * (image.ts), the request ring's guest-memory layout (layout.ts, modelled on virtio-blk), the
 * host-side device serving it (blk-device.ts), the guest's driver (guest-ring.ts) and the disk
 * digest (digest.ts). A VM with --disk boots with one (vm-build.ts; the `disk` workload drives
 * it); nothing migrates one yet (issue 15).
 */
export * from './layout.ts';
export {
  ALLOC_MAP_SUFFIX,
  BLOCK_SHIFT,
  BLOCK_SIZE,
  DiskImage,
  MAX_DISK_BYTES,
  MIN_DISK_BYTES,
  checkBlockRange,
  checkDiskBytes,
} from './image.ts';
export type { AllocationSource, DiskImageOptions } from './image.ts';
export { BlkDevice, WRITE_LATENCY_SAMPLES } from './blk-device.ts';
export type { BlkCounters, BlkDeviceComponents, BlkHooks, BlkState } from './blk-device.ts';
export { GuestBlkRing } from './guest-ring.ts';
export { INCOMING_SUFFIX, VirtualDisk } from './virtual-disk.ts';
export { lockImage, LOCK_SUFFIX } from './lock.ts';
export { digestDisk, hashBlocksInto, ledgerOf } from './digest.ts';
export { ImageFileReader } from './file-reader.ts';
export {
  readBlockList,
  SpanScratch,
  SPAN_READ_FACTOR,
  type BlockSource,
  type ReadBlockListOptions,
} from './read-blocks.ts';
export { BlockDigestLedger, blockHashes, CHUNK_BLOCKS } from './ledger.ts';
