/**
 * Guest memory: `bytes` of RAM in 4 KiB pages, held in one or more SharedArrayBuffer regions of
 * at most 1 GiB each (a typed array cannot span 4 GiB in Node 20, so a 16 GiB VM is 16
 * regions, like QEMU RAM blocks). Page n is addressed globally: region n >>> regionPageShift,
 * offset (n & regionPageMask) * 4096. The vCPU worker attaches to the same regions and stores
 * into them directly; the host reads pages as views (no copy) to send them, and writes pages
 * with writePage() when they arrive.
 *
 * `touched` records pages the host wrote (init, writePage): together with the harvested dirty
 * log it tells which pages can be non-zero (ToyVm.possiblyNonZero()), and a migration skips
 * every other page as known zero. The contract for host-side writers: writePage() marks the
 * page itself; a writer that bypasses it — stores through page(), pageRun() or region() views,
 * e.g. a migration's page applier receiving into an incoming VM — must call markTouched(n) for
 * every page it may have made non-zero (after or before the bytes, as long as it is before the
 * next possiblyNonZero() that must see them). Otherwise a VM that arrived by migration and is
 * migrated onward would skip those pages as zero. Guest stores need nothing: the vCPU's dirty
 * log covers them.
 *
 * Lifetime: the regions live as long as anything references them. release() (ToyVm.destroy)
 * drops this object's references and tells onRelease() listeners (a prefault worker stops), so
 * a destroyed VM's memory is freed once views handed out earlier are gone and V8 collects.
 */
import { MigrationError } from '../errors.ts';
import { Bitmap } from './bitmap.ts';

/** Bytes per guest page. */
export const PAGE_SIZE = 4096;
/** log2(PAGE_SIZE). */
export const PAGE_SHIFT = 12;
/** Smallest VM: 1 MiB. */
export const MIN_MEMORY_BYTES = 1024 * 1024;
/** Largest VM: 16 GiB. */
export const MAX_MEMORY_BYTES = 16 * 1024 ** 3;
/** Default (and largest) region: 1 GiB. */
export const DEFAULT_REGION_BYTES = 1024 ** 3;

/** What a worker needs to attach to the same guest memory. Structured-clonable. */
export interface GuestMemoryLayout {
  bytes: number;
  regionBytes: number;
  regions: SharedArrayBuffer[];
}

/** Options for GuestMemory.allocate. */
export interface GuestMemoryOptions {
  /**
   * Region size: a power of two, ≥ one page, ≤ 1 GiB. Tests use small regions to exercise
   * multi-region addressing without allocating gigabytes.
   * @default 1 GiB
   */
  regionBytes?: number;
}

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

/** Paged guest RAM over shared regions. */
export class GuestMemory {
  /** Total bytes (a multiple of PAGE_SIZE). */
  readonly bytes: number;
  /** bytes / PAGE_SIZE. */
  readonly pageCount: number;
  /** PAGE_SIZE, for callers that hold only the memory. */
  readonly pageSize = PAGE_SIZE;
  /** Bytes per region (the last region may be shorter). */
  readonly regionBytes: number;
  /** Page n is in region n >>> regionPageShift. */
  readonly regionPageShift: number;
  /**
   * Pages the host wrote (init, writePage, markTouched), i.e. possibly non-zero for reasons
   * other than guest stores. Writers that bypass writePage() must call markTouched().
   */
  readonly touched: Bitmap;
  #regions: readonly SharedArrayBuffer[];
  #u8: Uint8Array[];
  #u32: Uint32Array[];
  #buf: Buffer[];
  readonly #pageMask: number;
  /** pageCount until release(), then 0: the bounds check refuses every page at no extra cost. */
  #pageLimit: number;
  #releaseListeners: Set<() => void> | undefined = new Set();

  private constructor(layout: GuestMemoryLayout) {
    this.bytes = layout.bytes;
    this.pageCount = layout.bytes / PAGE_SIZE;
    this.regionBytes = layout.regionBytes;
    this.regionPageShift = Math.log2(layout.regionBytes) - PAGE_SHIFT;
    this.#pageMask = (1 << this.regionPageShift) - 1;
    this.#pageLimit = this.pageCount;
    this.#regions = layout.regions;
    this.#u8 = layout.regions.map((r) => new Uint8Array(r));
    this.#u32 = layout.regions.map((r) => new Uint32Array(r));
    this.#buf = layout.regions.map((r) => Buffer.from(r));
    this.touched = new Bitmap(this.pageCount);
  }

  /** The shared regions, in page order (none after release()). */
  get regions(): readonly SharedArrayBuffer[] {
    return this.#regions;
  }

  /** Allocates zeroed memory (SharedArrayBuffers are backed lazily: untouched pages cost nothing). */
  static allocate(bytes: number, options: GuestMemoryOptions = {}): GuestMemory {
    checkMemoryBytes(bytes);
    const regionBytes = options.regionBytes ?? DEFAULT_REGION_BYTES;
    if (
      !Number.isInteger(regionBytes) ||
      regionBytes < PAGE_SIZE ||
      regionBytes > DEFAULT_REGION_BYTES ||
      (regionBytes & (regionBytes - 1)) !== 0
    ) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `region size ${regionBytes} must be a power of two between 4 KiB and 1 GiB`,
      );
    }
    const regions: SharedArrayBuffer[] = [];
    for (let offset = 0; offset < bytes; offset += regionBytes) {
      regions.push(new SharedArrayBuffer(Math.min(regionBytes, bytes - offset)));
    }
    return new GuestMemory({ bytes, regionBytes, regions });
  }

  /** Attaches to memory allocated elsewhere (the vCPU worker's side, tests). */
  static attach(layout: GuestMemoryLayout): GuestMemory {
    return new GuestMemory(layout);
  }

  /** What to pass to a worker so it can attach. */
  get layout(): GuestMemoryLayout {
    return { bytes: this.bytes, regionBytes: this.regionBytes, regions: [...this.regions] };
  }

  /** A view of page n (no copy): reads see the live page, writes go straight to guest memory. */
  page(n: number): Uint8Array {
    this.#check(n);
    const offset = (n & this.#pageMask) * PAGE_SIZE;
    return this.#u8[n >>> this.regionPageShift]!.subarray(offset, offset + PAGE_SIZE);
  }

  /**
   * A view of up to `count` consecutive pages starting at `first`, cut short at the end of
   * first's region (regions are separate buffers). Length is a multiple of PAGE_SIZE, ≥ 1 page.
   */
  pageRun(first: number, count: number): Uint8Array {
    this.#check(first);
    const inRegion = this.#pageMask + 1 - (first & this.#pageMask);
    const pages = Math.max(1, Math.min(count, inRegion, this.pageCount - first));
    const offset = (first & this.#pageMask) * PAGE_SIZE;
    return this.#u8[first >>> this.regionPageShift]!.subarray(offset, offset + pages * PAGE_SIZE);
  }

  /** A view of region i (whole region, page order). */
  region(i: number): Uint8Array {
    if (this.released) throw releasedError();
    const r = this.#u8[i];
    if (!r) throw new MigrationError('ERR_INVALID_ARGUMENT', `region ${i} does not exist (have ${this.#u8.length})`);
    return r;
  }

  /** Copies src (exactly PAGE_SIZE bytes) into page n and marks it touched. */
  writePage(n: number, src: Uint8Array): void {
    this.#check(n);
    if (src.length !== PAGE_SIZE) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `a page is ${PAGE_SIZE} bytes, got ${src.length}`);
    }
    this.#u8[n >>> this.regionPageShift]!.set(src, (n & this.#pageMask) * PAGE_SIZE);
    this.touched.set(n);
  }

  /**
   * Records that page n may be non-zero because the host wrote it without writePage() (through
   * a page(), pageRun() or region() view). One bit set; see the header for the contract.
   */
  markTouched(n: number): void {
    this.#check(n);
    this.touched.set(n);
  }

  /** True once release() ran. */
  get released(): boolean {
    return this.#releaseListeners === undefined;
  }

  /**
   * Calls listener once when release() runs (at once if it already has), e.g. to stop a worker
   * that writes this memory. Returns an unsubscribe function.
   */
  onRelease(listener: () => void): () => void {
    const listeners = this.#releaseListeners;
    if (!listeners) {
      listener();
      return () => {};
    }
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  /**
   * Drops this object's references to the regions and tells the onRelease() listeners; every
   * later page access throws ERR_VM_STATE. The memory itself is freed once nothing else holds a
   * region or a view of one (workers, views handed out earlier) and V8 collects it. Idempotent.
   */
  release(): void {
    const listeners = this.#releaseListeners;
    if (!listeners) return;
    this.#releaseListeners = undefined;
    this.#pageLimit = 0;
    this.#regions = [];
    this.#u8 = [];
    this.#u32 = [];
    this.#buf = [];
    for (const listener of listeners) listener();
  }

  /** True if page n is all zero: the first 8 words in JS (most non-zero pages fail there), then a native compare. */
  isZeroPage(n: number): boolean {
    this.#check(n);
    const region = n >>> this.regionPageShift;
    const offset = (n & this.#pageMask) * PAGE_SIZE;
    const w = this.#u32[region]!;
    const w0 = offset >>> 2;
    if ((w[w0]! | w[w0 + 1]! | w[w0 + 2]! | w[w0 + 3]! | w[w0 + 4]! | w[w0 + 5]! | w[w0 + 6]! | w[w0 + 7]!) !== 0) {
      return false;
    }
    return ZERO_PAGE.compare(this.#buf[region]!, offset, offset + PAGE_SIZE) === 0;
  }

  #check(n: number): void {
    if (!(n >= 0 && n < this.#pageLimit && Number.isInteger(n))) {
      if (this.released) throw releasedError();
      throw new MigrationError('ERR_PAGE_OUT_OF_RANGE', `page ${n} is outside the VM (0..${this.pageCount - 1})`);
    }
  }
}

function releasedError(): MigrationError {
  return new MigrationError('ERR_VM_STATE', 'guest memory was released (the VM was destroyed)');
}

/** Throws ERR_INVALID_SIZE unless bytes is a whole number of pages in [1 MiB, 16 GiB]. */
export function checkMemoryBytes(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < MIN_MEMORY_BYTES || bytes > MAX_MEMORY_BYTES) {
    throw new MigrationError(
      'ERR_INVALID_SIZE',
      `VM memory must be between 1MiB and 16GiB, got ${Number.isFinite(bytes) ? bytes + ' bytes' : String(bytes)}`,
    );
  }
  if (bytes % PAGE_SIZE !== 0) {
    throw new MigrationError('ERR_INVALID_SIZE', `VM memory must be a multiple of 4KiB (one page), got ${bytes} bytes`);
  }
}
