/**
 * The virtual disk's backing store: a raw image in a real, sparse file, 4 KiB blocks (one block
 * is one guest page, so a request's buffer is a list of whole guest pages). Reads and writes are
 * positional (FileHandle read/write at block offsets), whole blocks only; flush() is fdatasync.
 *
 * Two maps go with the image, both one bit per block:
 *
 *   allocated  blocks ever written (in memory; persisted beside the image, see below). A block
 *              that is not allocated is a hole and reads as zeros WITHOUT touching the file:
 *              the migration copies allocated blocks only, and never reads a hole to find out
 *              it is zero. The bit is set BEFORE the write is issued, so the map is always a
 *              superset of what the file holds (a failed write leaves a block marked that may
 *              read back as zeros: harmless; the reverse would lose data).
 *   dirtyLog   blocks written since the last harvest: the disk's dirty log, the same DirtyLog
 *              as guest memory's (dirty-log.ts), marked AFTER the write is in the file (data
 *              first, then the mark: what makes the harvest lossless). Its buffer is a
 *              SharedArrayBuffer, so the harvester may be another thread; the image is its one
 *              writer (dirty-log.ts's rule: all marks come from this object's event loop).
 *
 * Why the allocation map is persisted, not rebuilt from the file: Node 20 exposes neither
 * SEEK_DATA/SEEK_HOLE nor FIEMAP, so without a persisted map the only way to learn which blocks
 * hold data is to read the whole image, holes included — exactly the cost the map exists to
 * avoid (a 1 TiB image with 1 GiB written would be read in full at every open). So the map
 * lives in `<image>.alloc`: a 32-byte header (magic, version, state, block count, image size)
 * and the bitmap words. It is written whole at close() with state CLEAN; open() immediately
 * rewrites the header to IN_USE (and fdatasyncs it), so a map that is not CLEAN on open means
 * the previous user did not close the image (a crash) and the map may miss blocks written since:
 * only then is the image scanned (read in 1 MiB chunks, a block counts if it is not all zeros).
 * The scan is the crash-recovery path, never the normal one. Writing the map at every write
 * would cost a second synchronous write per newly allocated block for nothing the next open
 * cannot recover.
 *
 * Limits: sizes are whole blocks from MIN_DISK_BYTES to MAX_DISK_BYTES (so a block number fits
 * a u32 in the request ring); every block number and count is checked (ERR_BLOCK_OUT_OF_RANGE);
 * file-system failures are ERR_DISK_IMAGE with the cause. One DiskImage per image file at a
 * time, even across hosts on shared storage: two would each keep a map of their own and run a
 * guest each on one disk. create() and open() take the image lock (lock.ts), close() drops it.
 */
import { constants as fsConstants, promises as fs, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { MigrationError } from '../../errors.ts';
import { Bitmap, type ReadonlyBitmap } from '../bitmap.ts';
import { DirtyLog, markDirty } from '../dirty-log.ts';
import { lockImage } from './lock.ts';

/** Bytes per disk block (one guest page). */
export const BLOCK_SIZE = 4096;
/** log2(BLOCK_SIZE). */
export const BLOCK_SHIFT = 12;
/** Smallest disk: 1 MiB. */
export const MIN_DISK_BYTES = 1024 * 1024;
/** Largest disk: 1 TiB (2^28 blocks; the maps are 32 MiB each). */
export const MAX_DISK_BYTES = 1024 ** 4;

/** Suffix of the allocation-map file beside the image. */
export const ALLOC_MAP_SUFFIX = '.alloc';
const MAP_MAGIC = 0x4d41_4d4c; // "LMAM", little-endian
const MAP_VERSION = 1;
const MAP_HEADER_BYTES = 32;
const MAP_CLEAN = 0;
const MAP_IN_USE = 1;
const SCAN_CHUNK_BYTES = 1024 * 1024;

/** Options for DiskImage.create / open. */
export interface DiskImageOptions {
  /**
   * The shared buffer of an existing block dirty log (⌈blocks/32⌉ × 4 bytes) to mark into,
   * e.g. one a harvester in another thread holds. @default a new, clean log
   */
  dirtyLog?: SharedArrayBuffer;
}

/** How the allocation map was obtained at open(). */
export type AllocationSource = 'created' | 'map' | 'scan';

/** A raw, sparse disk image with its allocation map and block dirty log. */
export class DiskImage {
  /** The image file. */
  readonly path: string;
  /** Image size in bytes (a whole number of blocks). */
  readonly sizeBytes: number;
  /** Number of blocks. */
  readonly blockCount: number;
  /** Blocks written since the last harvest (marked after the data is in the file). */
  readonly dirtyLog: DirtyLog;
  /** Where the allocation map came from: a new image, the persisted map, or a crash-recovery scan. */
  readonly allocationSource: AllocationSource;
  readonly #allocated: Bitmap;
  readonly #file: FileHandle;
  readonly #map: FileHandle;
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #unlock: () => Promise<void>;
  #closed = false;

  private constructor(
    path: string,
    sizeBytes: number,
    file: FileHandle,
    map: FileHandle,
    allocated: Bitmap,
    source: AllocationSource,
    options: DiskImageOptions,
    unlock: () => Promise<void>,
  ) {
    this.#unlock = unlock;
    this.path = path;
    this.sizeBytes = sizeBytes;
    this.blockCount = sizeBytes / BLOCK_SIZE;
    this.#file = file;
    this.#map = map;
    this.#allocated = allocated;
    this.allocationSource = source;
    this.dirtyLog = new DirtyLog(this.blockCount, options.dirtyLog);
  }

  /**
   * Creates a new image of `sizeBytes` (all holes: nothing is allocated on disk) and its map.
   * Refuses to overwrite an existing file (ERR_DISK_IMAGE); a bad size is ERR_INVALID_SIZE.
   */
  static async create(path: string, sizeBytes: number, options: DiskImageOptions = {}): Promise<DiskImage> {
    checkDiskBytes(sizeBytes);
    checkDirtyBuffer(sizeBytes / BLOCK_SIZE, options.dirtyLog);
    const unlock = await lockImage(path);
    let file: FileHandle;
    try {
      file = await diskIo(path, 'create', () => fs.open(path, 'wx+'));
    } catch (err) {
      await unlock();
      throw err;
    }
    let map: FileHandle | undefined;
    try {
      await diskIo(path, 'size', () => file.truncate(sizeBytes));
      map = await diskIo(path, 'create the map of', () => fs.open(path + ALLOC_MAP_SUFFIX, 'w+'));
      const allocated = new Bitmap(sizeBytes / BLOCK_SIZE);
      await writeMap(path, map, allocated, sizeBytes, MAP_IN_USE);
      return new DiskImage(path, sizeBytes, file, map, allocated, 'created', options, unlock);
    } catch (err) {
      await file.close().catch(() => undefined);
      await map?.close().catch(() => undefined);
      await fs.rm(path, { force: true });
      await fs.rm(path + ALLOC_MAP_SUFFIX, { force: true });
      await unlock();
      throw err;
    }
  }

  /**
   * Opens an existing image. Its size must be a valid disk size. The allocation map is read
   * from `<path>.alloc` if that was closed cleanly and describes this image; otherwise (missing,
   * damaged, another size, or left IN_USE by a crash) the image is scanned (see the header).
   */
  static async open(path: string, options: DiskImageOptions = {}): Promise<DiskImage> {
    const unlock = await lockImage(path);
    let file: FileHandle;
    try {
      file = await diskIo(path, 'open', () => fs.open(path, fsConstants.O_RDWR));
    } catch (err) {
      await unlock();
      throw err;
    }
    let map: FileHandle | undefined;
    try {
      const { size } = await diskIo(path, 'stat', () => file.stat());
      if (size % BLOCK_SIZE !== 0 || size < MIN_DISK_BYTES || size > MAX_DISK_BYTES) {
        throw new MigrationError(
          'ERR_DISK_IMAGE',
          `${path} is ${size} bytes: a disk image is a whole number of ${BLOCK_SIZE}-byte blocks, ` +
            `${MIN_DISK_BYTES}–${MAX_DISK_BYTES} bytes`,
        );
      }
      checkDirtyBuffer(size / BLOCK_SIZE, options.dirtyLog);
      map = await diskIo(path, 'open the map of', () =>
        fs.open(path + ALLOC_MAP_SUFFIX, fsConstants.O_RDWR | fsConstants.O_CREAT),
      );
      let allocated = await readMap(map, size);
      let source: AllocationSource = 'map';
      if (!allocated) {
        allocated = await scanImage(path, file, size);
        source = 'scan';
      }
      await writeMap(path, map, allocated, size, MAP_IN_USE);
      return new DiskImage(path, size, file, map, allocated, source, options, unlock);
    } catch (err) {
      await file.close().catch(() => undefined);
      await map?.close().catch(() => undefined);
      await unlock();
      throw err;
    }
  }

  /** Blocks ever written (a superset: see the header). A live view; do not modify. */
  get allocated(): ReadonlyBitmap {
    return this.#allocated;
  }

  /** Bytes of allocated blocks: what a copy of this disk has to move. */
  get allocatedBytes(): number {
    return this.#allocated.count * BLOCK_SIZE;
  }

  /** True once close() ran. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Reads `count` blocks from `first` into `into` (count × BLOCK_SIZE bytes; a new buffer if not
   * given) and returns it. Runs of holes are zero-filled without reading the file.
   */
  async readBlocks(first: number, count: number, into?: Uint8Array): Promise<Uint8Array> {
    this.#checkRange(first, count);
    const out = into ?? new Uint8Array(count * BLOCK_SIZE);
    if (out.length !== count * BLOCK_SIZE) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `${count} blocks need ${count * BLOCK_SIZE} bytes, got ${out.length}`,
      );
    }
    return this.#track(async () => {
      const end = first + count;
      let b = first;
      while (b < end) {
        const allocated = this.#allocated.has(b);
        let runEnd = b + 1;
        while (runEnd < end && this.#allocated.has(runEnd) === allocated) runEnd += 1;
        const view = out.subarray((b - first) * BLOCK_SIZE, (runEnd - first) * BLOCK_SIZE);
        if (allocated) await this.#readFully(view, b * BLOCK_SIZE);
        else view.fill(0);
        b = runEnd;
      }
      return out;
    });
  }

  /**
   * Writes `data` (a whole number of blocks, ≥ 1) at block `first`. Resolves once the data is in
   * the file (the kernel's page cache: flush() makes it durable), then marks the blocks in
   * dirtyLog. A short write is continued; a failure is ERR_DISK_IMAGE.
   */
  async writeBlocks(first: number, data: Uint8Array): Promise<void> {
    if (data.length === 0 || data.length % BLOCK_SIZE !== 0) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `a write is a whole number of blocks, got ${data.length} bytes`);
    }
    const count = data.length / BLOCK_SIZE;
    this.#checkRange(first, count);
    await this.#track(async () => {
      for (let b = first; b < first + count; b++) this.#allocated.set(b); // before: a superset
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await diskIo(this.path, 'write', () =>
          this.#file.write(data, done, data.length - done, first * BLOCK_SIZE + done),
        );
        done += bytesWritten;
      }
      const words = this.dirtyLog.words;
      for (let b = first; b < first + count; b++) markDirty(words, b); // after: see dirty-log.ts
    });
  }

  /**
   * Reads blocks [first, first + count) with ONE positional read, holes included (a sparse
   * file's hole reads as zeros without touching the disk), into `into`. For a migration sending
   * a batch of allocated blocks scattered over a short span: one read instead of one per run —
   * a guest writing at random leaves runs of a block or two, and each read through the thread
   * pool costs tens of microseconds of the event loop. The allocation map still decides what is
   * sent; this never scans the image.
   */
  async readSpan(first: number, count: number, into: Uint8Array): Promise<Uint8Array> {
    this.#checkRange(first, count);
    if (into.length !== count * BLOCK_SIZE) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `${count} blocks need ${count * BLOCK_SIZE} bytes, got ${into.length}`,
      );
    }
    return this.#track(async () => {
      await this.#readFully(into, first * BLOCK_SIZE);
      return into;
    });
  }

  /**
   * Writes several runs of blocks at once (`runs[i]` = its first block and its bytes, runs not
   * overlapping), synchronously — positional writes into the page cache, a few microseconds
   * each, where the promise API costs tens of microseconds of the event loop per call — then
   * marks them dirty, as writeBlocks does. For a migration's destination applying a batch of
   * scattered blocks; the guest's own writes stay asynchronous (writeBlocks).
   */
  writeRunsSync(runs: readonly { first: number; data: Uint8Array }[]): void {
    for (const run of runs) {
      if (run.data.length === 0 || run.data.length % BLOCK_SIZE !== 0) {
        throw new MigrationError(
          'ERR_INVALID_ARGUMENT',
          `a write is a whole number of blocks, got ${run.data.length} bytes`,
        );
      }
      this.#checkRange(run.first, run.data.length / BLOCK_SIZE);
    }
    const fd = this.#file.fd;
    for (const { first, data } of runs) {
      const count = data.length / BLOCK_SIZE;
      for (let b = first; b < first + count; b++) this.#allocated.set(b); // before: a superset
      let done = 0;
      while (done < data.length) {
        try {
          done += writeSync(fd, data, done, data.length - done, first * BLOCK_SIZE + done);
        } catch (err) {
          throw new MigrationError('ERR_DISK_IMAGE', `could not write disk image ${this.path}: ${String(err)}`, {
            cause: err,
          });
        }
      }
      const words = this.dirtyLog.words;
      for (let b = first; b < first + count; b++) markDirty(words, b); // after: see dirty-log.ts
    }
  }

  /** Makes every completed write durable (fdatasync). */
  async flush(): Promise<void> {
    this.#checkOpen();
    await this.#track(() => diskIo(this.path, 'flush', () => this.#file.datasync()));
  }

  /**
   * Waits for the I/O in flight, flushes, persists the allocation map (state CLEAN) and closes
   * both files. Idempotent. Afterwards every operation throws ERR_DISK_IMAGE.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    try {
      await diskIo(this.path, 'flush', () => this.#file.datasync());
      await writeMap(this.path, this.#map, this.#allocated, this.sizeBytes, MAP_CLEAN);
    } finally {
      await this.#file.close().catch(() => undefined);
      await this.#map.close().catch(() => undefined);
      await this.#unlock().catch(() => undefined);
    }
  }

  /**
   * Closes the files without making anything durable (no fdatasync, no map written) and removes
   * the image, its map and any `alsoRemove` paths — then, last, drops the lock: for an image
   * whose VM is gone (destroyed, or migrated away from a copy). A close() would first write back
   * every dirty page of it (seconds for a large image written lately) for nothing. The lock goes
   * last because removing a large file can take a while (a filesystem mounted with `discard`
   * trims its extents): an image of the same name made here meanwhile — a VM migrating straight
   * back — would otherwise be created first and then lose its map, or itself, to this removal.
   * While the lock is held, that image is refused instead (ERR_DISK_IMAGE names the holder).
   * Idempotent.
   */
  async remove(alsoRemove: readonly string[] = []): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    await this.#file.close().catch(() => undefined);
    await this.#map.close().catch(() => undefined);
    try {
      for (const path of [this.path, this.path + ALLOC_MAP_SUFFIX, ...alsoRemove]) await fs.rm(path, { force: true });
    } finally {
      await this.#unlock().catch(() => undefined);
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new MigrationError('ERR_DISK_IMAGE', `${this.path} is closed`);
  }

  #checkRange(first: number, count: number): void {
    this.#checkOpen();
    checkBlockRange(first, count, this.blockCount);
  }

  async #readFully(view: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < view.length) {
      const { bytesRead } = await diskIo(this.path, 'read', () =>
        this.#file.read(view, done, view.length - done, position + done),
      );
      if (bytesRead === 0) {
        throw new MigrationError(
          'ERR_DISK_IMAGE',
          `${this.path} ended at byte ${position + done}: truncated under us?`,
        );
      }
      done += bytesRead;
    }
  }

  #track<T>(op: () => Promise<T>): Promise<T> {
    const p = op();
    this.#inflight.add(p);
    const untrack = (): void => {
      this.#inflight.delete(p);
    };
    p.then(untrack, untrack);
    return p;
  }
}

/** Throws ERR_BLOCK_OUT_OF_RANGE unless [first, first + count) is a non-empty range of whole blocks below blockCount. */
export function checkBlockRange(first: number, count: number, blockCount: number): void {
  if (!Number.isSafeInteger(first) || first < 0 || first >= blockCount) {
    throw new MigrationError('ERR_BLOCK_OUT_OF_RANGE', `block ${first} is outside the disk (0–${blockCount - 1})`);
  }
  if (!Number.isSafeInteger(count) || count < 1 || count > blockCount - first) {
    throw new MigrationError(
      'ERR_BLOCK_OUT_OF_RANGE',
      `${count} blocks from block ${first} do not fit the disk of ${blockCount} blocks`,
    );
  }
}

/** Throws ERR_INVALID_SIZE unless `bytes` is a whole number of blocks within the disk limits. */
export function checkDiskBytes(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < MIN_DISK_BYTES || bytes > MAX_DISK_BYTES || bytes % BLOCK_SIZE !== 0) {
    throw new MigrationError(
      'ERR_INVALID_SIZE',
      `a disk is a whole number of ${BLOCK_SIZE}-byte blocks from ${MIN_DISK_BYTES} to ${MAX_DISK_BYTES} bytes, got ${bytes}`,
    );
  }
}

function checkDirtyBuffer(blockCount: number, buffer: SharedArrayBuffer | undefined): void {
  if (buffer && buffer.byteLength !== Math.ceil(blockCount / 32) * 4) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `a dirty log of ${blockCount} blocks is ${Math.ceil(blockCount / 32) * 4} bytes, got ${buffer.byteLength}`,
    );
  }
}

/** Runs a file-system call, turning its failure into ERR_DISK_IMAGE (a MigrationError passes through). */
async function diskIo<T>(path: string, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof MigrationError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new MigrationError('ERR_DISK_IMAGE', `could not ${what} disk image ${path}: ${reason}`, { cause: err });
  }
}

async function writeMap(
  path: string,
  map: FileHandle,
  allocated: Bitmap,
  sizeBytes: number,
  state: number,
): Promise<void> {
  const header = new DataView(new ArrayBuffer(MAP_HEADER_BYTES));
  header.setUint32(0, MAP_MAGIC, true);
  header.setUint32(4, MAP_VERSION, true);
  header.setUint32(8, state, true);
  header.setFloat64(16, allocated.size, true);
  header.setFloat64(24, sizeBytes, true);
  const headerBytes = new Uint8Array(header.buffer);
  if (state === MAP_IN_USE) {
    // Only the header changes: the bits on file stay whatever the last clean close wrote, and
    // IN_USE says not to trust them.
    await diskIo(path, 'write the map of', () => map.write(headerBytes, 0, MAP_HEADER_BYTES, 0));
  } else {
    const bits = allocated.bytes();
    await diskIo(path, 'write the map of', () => map.truncate(MAP_HEADER_BYTES + bits.length));
    await diskIo(path, 'write the map of', () => map.write(bits, 0, bits.length, MAP_HEADER_BYTES));
    await diskIo(path, 'write the map of', () => map.datasync());
    await diskIo(path, 'write the map of', () => map.write(headerBytes, 0, MAP_HEADER_BYTES, 0));
  }
  await diskIo(path, 'write the map of', () => map.datasync());
}

/** The persisted map if it was closed cleanly and describes an image of `sizeBytes`, else undefined. */
async function readMap(map: FileHandle, sizeBytes: number): Promise<Bitmap | undefined> {
  const blockCount = sizeBytes / BLOCK_SIZE;
  const bitBytes = Math.ceil(blockCount / 32) * 4;
  const buf = new Uint8Array(MAP_HEADER_BYTES + bitBytes);
  const { bytesRead } = await map.read(buf, 0, buf.length, 0);
  if (bytesRead !== buf.length) return undefined;
  const header = new DataView(buf.buffer, 0, MAP_HEADER_BYTES);
  if (
    header.getUint32(0, true) !== MAP_MAGIC ||
    header.getUint32(4, true) !== MAP_VERSION ||
    header.getUint32(8, true) !== MAP_CLEAN ||
    header.getFloat64(16, true) !== blockCount ||
    header.getFloat64(24, true) !== sizeBytes
  ) {
    return undefined;
  }
  return Bitmap.fromBytes(buf.subarray(MAP_HEADER_BYTES), blockCount);
}

/** Crash recovery: reads the whole image and marks every block that is not all zeros. */
async function scanImage(path: string, file: FileHandle, sizeBytes: number): Promise<Bitmap> {
  const allocated = new Bitmap(sizeBytes / BLOCK_SIZE);
  const chunk = new Uint8Array(SCAN_CHUNK_BYTES);
  const words = new Uint32Array(chunk.buffer);
  const wordsPerBlock = BLOCK_SIZE / 4;
  for (let offset = 0; offset < sizeBytes; offset += SCAN_CHUNK_BYTES) {
    const length = Math.min(SCAN_CHUNK_BYTES, sizeBytes - offset);
    const { bytesRead } = await diskIo(path, 'scan', () => file.read(chunk, 0, length, offset));
    if (bytesRead !== length)
      throw new MigrationError('ERR_DISK_IMAGE', `${path}: short read while scanning at ${offset}`);
    for (let blk = 0; blk < length / BLOCK_SIZE; blk++) {
      const base = blk * wordsPerBlock;
      for (let w = 0; w < wordsPerBlock; w++) {
        if (words[base + w] !== 0) {
          allocated.set(offset / BLOCK_SIZE + blk);
          break;
        }
      }
    }
  }
  return allocated;
}
