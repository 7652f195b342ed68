/**
 * The virtual disk's device model: the host half of the request ring in layout.ts, on the
 * agent's event loop (never in the vCPU worker), serving requests with positional file I/O on a
 * DiskImage. The guest half is guest-ring.ts.
 *
 *   guest ──slot, Atomics.store(AVAIL + 1), Atomics.notify──▶ waitForRequests() resolves
 *   serve(): for each request in [USED, AVAIL), in order:
 *     validate (layout.ts) ─bad─▶ status S_UNSUPP / S_INVALID, nothing else touched
 *     read  ─▶ image.readBlocks → copy into the buffer pages → mark each page in dmaLog
 *     write ─▶ copy the buffer pages → image.writeBlocks (resolves once the data is in the file)
 *     flush ─▶ image.flush() (fdatasync)
 *     ─▶ status into the slot, Atomics.store(USED + 1), Atomics.notify(USED), kick()
 *
 * Who owns what: the ring, both indices and the buffers are guest memory; the device writes only
 * statuses, USED and the pages a read fills, and marks each of them — data first, then the mark —
 * in `dmaLog`, the host's own dirty log (the vCPU's has exactly one writer: dirty-log.ts). The
 * image, with its allocation map and block dirty log, is the disk's state proper.
 *
 * Requests are served one at a time, in ring order, so a request's completion implies every
 * earlier one's: what a guest needs for a write-ahead log (write, then flush, then the commit
 * record) without tracking them separately. A write's buffer is copied out of guest memory
 * before the write is issued, so a guest changing it while the request is in flight changes
 * nothing on disk (virtio leaves that undefined; a copy makes it deterministic). A guest that
 * claims more than BLK_RING_SLOTS outstanding requests has overwritten the older ones: only the
 * last BLK_RING_SLOTS are served (as the NIC does with TX); the guest must not crash the host.
 *
 * close() (the VM was destroyed) wakes every waitForRequests() and stops serving: a request in
 * flight finishes its file I/O but stores nothing into guest memory and is not completed.
 *
 * What a disk migration needs of the device (agent-source/.../sections/disk, agent-dest):
 *   detached image   attachImage(null) while another host holds the image (shared storage
 *                    between the source's stop point and the destination's open): requests wait,
 *                    unserved, until an image is attached again
 *   hooks            beforeRead (post-copy: fetch absent blocks first), beforeWrite (post-copy:
 *                    a whole-block write makes a block present without a fetch), afterWrite
 *                    (mirror: the write completes to the guest only once the destination has it)
 *   write latency    every write's service time (taken → completion posted) in a ring of the
 *                    last WRITE_LATENCY_SAMPLES, with a sequence number, for the report's
 *                    before / during figures
 */
import { MigrationError, isMigrationError } from '../../errors.ts';
import { markDirty, type DirtyLog } from '../dirty-log.ts';
import { PAGE_SIZE, type GuestMemory } from '../guest-memory.ts';
import { untilSettledOrAborted } from '../wait.ts';
import { BLOCK_SIZE, type DiskImage } from './image.ts';
import {
  BLK_RING_PAGES,
  BLK_RING_SLOTS,
  OP_FLUSH,
  OP_READ,
  SLOT_STATUS,
  S_INVALID,
  S_IOERR,
  S_OK,
  S_UNSUPP,
  W_AVAIL,
  W_USED,
  blkSlotOffset,
  decodeRequest,
  validateRequest,
  type BlkLimits,
  type BlkRequest,
} from './layout.ts';

/** What a BlkDevice works with. */
export interface BlkDeviceComponents {
  /** The VM's memory; the ring occupies pages ringPage .. ringPage + BLK_RING_PAGES − 1. */
  memory: GuestMemory;
  /** A host-only dirty log over guest memory, separate from the vCPU's (one writer per bitmap). */
  dmaLog: DirtyLog;
  /** The disk, or null until one is attached (attachImage). */
  image: DiskImage | null;
  /** The disk's size (must equal the image's). @default the image's; required without one */
  sizeBytes?: number;
  /** First page of the ring. */
  ringPage: number;
  /** Wakes a halted vCPU (the completion interrupt). Must be cheap and safe to call at any time. */
  kick: () => void;
}

/** What the device has done. */
export interface BlkCounters {
  /** Read requests completed with S_OK. */
  reads: number;
  /** Write requests completed with S_OK. */
  writes: number;
  /** Flush requests completed with S_OK. */
  flushes: number;
  /** Blocks read into guest memory. */
  blocksRead: number;
  /** Blocks written to the image. */
  blocksWritten: number;
  /** Requests refused unserved (S_UNSUPP, S_INVALID). */
  refused: number;
  /** Requests the file system failed (S_IOERR). */
  ioErrors: number;
}

/**
 * The device state that travels with a VM (exportState / importState): which disk and ring it
 * is, the ring indices as they are in guest memory, and the counters (cumulative across
 * migrations, as the NIC's).
 */
export interface BlkState extends BlkCounters {
  /** The disk's size in bytes: a state is loaded only into a device of the same disk. */
  sizeBytes: number;
  /** First page of the ring. */
  ringPage: number;
  /** AVAIL and USED as in guest memory (equal: a paused VM's device is drained). */
  avail: number;
  used: number;
}

/** What a migration hooks into the device's service of requests (see the top of this file). */
export interface BlkHooks {
  /** Before a read is served: resolves once blocks [first, first + count) are present here. */
  beforeRead?(first: number, count: number): Promise<void>;
  /** Before a write is issued: its blocks are about to be overwritten whole. */
  beforeWrite?(first: number, count: number): void;
  /** After a write is in the image, before the guest sees it complete; `data` is the blocks' bytes. */
  afterWrite?(first: number, data: Uint8Array): Promise<void>;
}

/** Write service times kept (the most recent ones). */
export const WRITE_LATENCY_SAMPLES = 4096;

const COUNTER_KEYS = ['blocksRead', 'blocksWritten', 'flushes', 'ioErrors', 'reads', 'refused', 'writes'] as const;
const STATE_KEYS = [...COUNTER_KEYS, 'avail', 'ringPage', 'sizeBytes', 'used'].sort();

/** The host side of the virtual disk. */
export class BlkDevice {
  /** First page of the ring. */
  readonly ringPage: number;
  /** The disk's size in bytes. */
  readonly sizeBytes: number;
  readonly #memory: GuestMemory;
  #image: DiskImage | null;
  /** Resolves the wait of a service loop parked on a detached image. */
  #imageAttached: (() => void) | undefined;
  #hooks: BlkHooks = {};
  #onWritten: ((first: number, data: Uint8Array) => void) | undefined;
  readonly #writeMs = new Float64Array(WRITE_LATENCY_SAMPLES);
  #writeSeq = 0;
  readonly #dirty: Int32Array;
  readonly #kick: () => void;
  readonly #limits: BlkLimits;
  /** The ring's first page as words (a private zeroed copy once closed). */
  #idx: Int32Array;
  #closed = false;
  /** The serve() in progress: serve() calls run one after another, never interleaved. */
  #serving: Promise<number> = Promise.resolve(0);
  readonly #counters: BlkCounters = {
    reads: 0,
    writes: 0,
    flushes: 0,
    blocksRead: 0,
    blocksWritten: 0,
    refused: 0,
    ioErrors: 0,
  };

  constructor(components: BlkDeviceComponents) {
    const { memory, dmaLog, image, ringPage, kick } = components;
    const sizeBytes = components.sizeBytes ?? image?.sizeBytes;
    if (sizeBytes === undefined) throw new MigrationError('ERR_INTERNAL', 'a disk without an image needs its size');
    if (image && image.sizeBytes !== sizeBytes) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `the image is ${image.sizeBytes} bytes, the disk ${sizeBytes}`);
    }
    if (!Number.isSafeInteger(ringPage) || ringPage < 0 || ringPage > memory.pageCount - BLK_RING_PAGES) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `the disk ring needs pages ${ringPage}–${ringPage + BLK_RING_PAGES - 1}, the VM has ${memory.pageCount}`,
      );
    }
    if (dmaLog.pageCount !== memory.pageCount) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `the disk's DMA log covers ${dmaLog.pageCount} pages, the VM has ${memory.pageCount}`,
      );
    }
    if (BLOCK_SIZE !== PAGE_SIZE) throw new MigrationError('ERR_INTERNAL', 'a disk block must be a guest page');
    this.ringPage = ringPage;
    this.#memory = memory;
    this.#image = image;
    this.sizeBytes = sizeBytes;
    this.#dirty = dmaLog.words;
    this.#kick = kick;
    this.#limits = { blockCount: sizeBytes / BLOCK_SIZE, pageCount: memory.pageCount, ringPage };
    const page = memory.page(ringPage);
    this.#idx = new Int32Array(page.buffer, page.byteOffset, PAGE_SIZE / 4);
  }

  /** True if the guest has placed requests the device has not completed. */
  pending(): boolean {
    return Atomics.load(this.#idx, W_AVAIL) !== Atomics.load(this.#idx, W_USED);
  }

  /**
   * Serves every request placed so far (and any placed meanwhile), in order, and resolves with
   * how many it completed. Calls queue behind each other. Never throws for anything the guest
   * did: a bad request completes with an error status.
   */
  serve(): Promise<number> {
    const next = this.#serving.then(() => this.#serveAll());
    this.#serving = next.catch(() => 0);
    return next;
  }

  /**
   * Resolves once pending() is true (at once if it already is), waiting on the guest's
   * Atomics.notify of AVAIL with Atomics.waitAsync: no polling. Also resolves, with nothing
   * pending, when `signal` aborts or the device closes: callers check.
   */
  async waitForRequests(signal?: AbortSignal): Promise<void> {
    while (!signal?.aborted && !this.#closed) {
      if (!this.#image) {
        await untilSettledOrAborted(new Promise<void>((resolve) => (this.#imageAttached = resolve)), signal);
        continue;
      }
      const avail = Atomics.load(this.#idx, W_AVAIL);
      if (avail !== Atomics.load(this.#idx, W_USED)) return;
      const result = Atomics.waitAsync(this.#idx, W_AVAIL, avail);
      if (!result.async) continue; // AVAIL already moved
      await untilSettledOrAborted(result.value, signal);
    }
  }

  /** True once close() ran. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The image the device serves, or null while detached. */
  get image(): DiskImage | null {
    return this.#image;
  }

  /**
   * Serve `image` from now on, or nothing (null: requests wait until an image is attached). The
   * caller detaches only with the device drained (the VM paused) and closes the old image itself.
   */
  attachImage(image: DiskImage | null): void {
    if (image && image.sizeBytes !== this.sizeBytes) {
      throw new MigrationError(
        'ERR_DISK_IMAGE',
        `${image.path} is ${image.sizeBytes} bytes, this disk is ${this.sizeBytes}`,
      );
    }
    this.#image = image;
    if (image) {
      this.#imageAttached?.();
      this.#imageAttached = undefined;
    }
  }

  /** Hear every write once it is in the image (the disk's own digest ledger: VirtualDisk). */
  onWritten(listener: (first: number, data: Uint8Array) => void): void {
    this.#onWritten = listener;
  }

  /** Hook a migration into the service of requests (an empty object removes every hook). */
  setHooks(hooks: BlkHooks): void {
    this.#hooks = hooks;
  }

  /** Writes completed so far (the sequence number of the next write's latency sample). */
  get writeSeq(): number {
    return this.#writeSeq;
  }

  /** Service times (ms) of the writes numbered [from, writeSeq), at most the last WRITE_LATENCY_SAMPLES of them. */
  writeLatenciesSince(from: number): number[] {
    const start = Math.max(from, this.#writeSeq - WRITE_LATENCY_SAMPLES, 0);
    const out: number[] = [];
    for (let n = start; n < this.#writeSeq; n++) out.push(this.#writeMs[n % WRITE_LATENCY_SAMPLES]!);
    return out;
  }

  /** Detaches the device from guest memory (the VM is gone): wakes waiters, stops serving. Idempotent. Does not close the image. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#imageAttached?.();
    Atomics.notify(this.#idx, W_AVAIL);
    this.#idx = new Int32Array(PAGE_SIZE / 4);
  }

  /** A copy of the counters. */
  get counters(): BlkCounters {
    return { ...this.#counters };
  }

  /** The device state (plain data, msgpack-able). Consistent only with the vCPU paused and the device drained. */
  exportState(): BlkState {
    return { sizeBytes: this.sizeBytes, ringPage: this.ringPage, ...this.#indices(), ...this.#counters };
  }

  /**
   * Loads counters from exportState() of a device of the same disk size and ring page. Checks
   * everything before changing anything; throws ERR_STATE_MISMATCH. The ring indices travel in
   * guest memory (migrated before the device state): the copy in the state must agree with it,
   * and have nothing in flight (the source drained its device when it paused), or requests would
   * be replayed or lost.
   */
  importState(state: unknown): void {
    const checked = this.checkState(state);
    for (const key of COUNTER_KEYS) this.#counters[key] = checked[key];
  }

  /** What importState() checks, without loading anything: the state, typed; throws ERR_STATE_MISMATCH. */
  checkState(state: unknown): BlkState {
    if (typeof state !== 'object' || state === null || Array.isArray(state)) {
      throw new MigrationError('ERR_STATE_MISMATCH', 'disk state is not an object');
    }
    const s = state as Record<string, unknown>;
    const keys = Object.keys(s).sort();
    if (keys.length !== STATE_KEYS.length || keys.some((k, i) => k !== STATE_KEYS[i])) {
      throw new MigrationError(
        'ERR_STATE_MISMATCH',
        `disk state has fields [${keys.join(', ')}], expected [${STATE_KEYS.join(', ')}]`,
      );
    }
    if (s.sizeBytes !== this.sizeBytes || s.ringPage !== this.ringPage) {
      throw new MigrationError(
        'ERR_STATE_MISMATCH',
        `disk state is of a ${String(s.sizeBytes)}-byte disk with its ring at page ${String(s.ringPage)}, ` +
          `this one is ${this.sizeBytes} bytes at page ${this.ringPage}`,
      );
    }
    for (const key of COUNTER_KEYS) {
      const value = s[key];
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
        throw new MigrationError('ERR_STATE_MISMATCH', `disk state: ${key} must be a non-negative integer`);
      }
    }
    const here = this.#indices();
    if (s.avail !== here.avail || s.used !== here.used || here.avail !== here.used) {
      throw new MigrationError(
        'ERR_STATE_MISMATCH',
        `disk state has ring indices avail ${String(s.avail)} used ${String(s.used)}, guest memory has ` +
          `avail ${here.avail} used ${here.used} (they must agree, with nothing in flight)`,
      );
    }
    return s as unknown as BlkState;
  }

  /** AVAIL and USED as in guest memory now (u32). */
  #indices(): { avail: number; used: number } {
    return { avail: Atomics.load(this.#idx, W_AVAIL) >>> 0, used: Atomics.load(this.#idx, W_USED) >>> 0 };
  }

  async #serveAll(): Promise<number> {
    let done = 0;
    for (;;) {
      if (this.#closed || !this.#image) return done;
      const idx = this.#idx;
      let used = Atomics.load(idx, W_USED);
      const avail = Atomics.load(idx, W_AVAIL); // acquire: the slots below it are written
      const count = (avail - used) >>> 0;
      if (count === 0) return done;
      if (count > BLK_RING_SLOTS) used = (avail - BLK_RING_SLOTS) | 0;
      const offset = blkSlotOffset(this.ringPage, used);
      const page = offset >>> 12;
      const view = this.#view(page);
      const req = decodeRequest(view, offset & (PAGE_SIZE - 1));
      const status = validateRequest(req, this.#limits) ?? (await this.#execute(req));
      if (this.#closed) return done; // the VM is gone: its memory is not ours to write
      if (status === S_INVALID || status === S_UNSUPP) this.#counters.refused += 1;
      view.setUint32((offset & (PAGE_SIZE - 1)) + SLOT_STATUS, status, true);
      markDirty(this.#dirty, page); // after the data: see dirty-log.ts
      Atomics.store(idx, W_USED, (used + 1) | 0); // publishes the status (release)
      markDirty(this.#dirty, this.ringPage);
      Atomics.notify(idx, W_USED);
      this.#kick();
      done += 1;
    }
  }

  /** Serves a valid request; the status it completes with. */
  async #execute(req: BlkRequest): Promise<number> {
    const image = this.#image!;
    const hooks = this.#hooks;
    try {
      if (req.op === OP_FLUSH) {
        await image.flush();
        this.#counters.flushes += 1;
      } else if (req.op === OP_READ) {
        if (hooks.beforeRead) await hooks.beforeRead(req.block, req.count);
        const data = await image.readBlocks(req.block, req.count);
        if (this.#closed) return S_IOERR;
        for (let k = 0; k < req.count; k++) {
          const page = req.pages[k]!;
          this.#memory.page(page).set(data.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE));
          markDirty(this.#dirty, page); // a device write to guest memory migrates like a guest one
        }
        this.#counters.reads += 1;
        this.#counters.blocksRead += req.count;
      } else {
        const taken = performance.now();
        const data = new Uint8Array(req.count * BLOCK_SIZE);
        for (let k = 0; k < req.count; k++) data.set(this.#memory.page(req.pages[k]!), k * BLOCK_SIZE);
        hooks.beforeWrite?.(req.block, req.count);
        await image.writeBlocks(req.block, data);
        this.#onWritten?.(req.block, data);
        // The hook as it is NOW, not when the request was taken: a mirror that started while
        // this write was in flight must see it (its mark may land after the mirror's last harvest).
        const afterWrite = this.#hooks.afterWrite;
        if (afterWrite) await afterWrite(req.block, data);
        this.#writeMs[this.#writeSeq % WRITE_LATENCY_SAMPLES] = performance.now() - taken;
        this.#writeSeq += 1;
        this.#counters.writes += 1;
        this.#counters.blocksWritten += req.count;
      }
      return S_OK;
    } catch (err) {
      // The request was validated, so what fails here is the file system (or a closed image).
      if (!isMigrationError(err) || err.code !== 'ERR_DISK_IMAGE') throw err;
      this.#counters.ioErrors += 1;
      return S_IOERR;
    }
  }

  #view(page: number): DataView {
    const bytes = this.#memory.page(page);
    return new DataView(bytes.buffer, bytes.byteOffset, PAGE_SIZE);
  }
}
