/**
 * A VM's disk as a whole: its device (always there, for the life of the VM), the image the
 * device serves (attached, or detached while another host holds it), where that image lives,
 * and what becomes of the image when the VM goes. What a migration does with a disk goes
 * through here:
 *
 *   detach()      shared storage, the source's stop point: the device (drained: the VM is
 *                 paused) serves nothing, the image is flushed and closed, its lock dropped —
 *                 the destination may open it now
 *   attach()      the destination opens it (taking the lock) at its stop point; the source
 *                 opens it again when the migration fails before Handoff
 *   keepImage()   the image outlives this VM: shared storage, where the other host's VM runs on
 *                 the same file (the source after Handoff; the destination discarding its copy)
 *   close()       the VM is destroyed: stop the device, close the image, remove it (with its
 *                 map and lock, and the temporary directory made for it) unless kept
 */
import { promises as fs } from 'node:fs';
import { MigrationError } from '../../errors.ts';
import type { BlkDevice } from './blk-device.ts';
import { BLOCK_SIZE, DiskImage } from './image.ts';
import { BlockDigestLedger } from './ledger.ts';

/** Mark beside an image an incoming migration is writing (removed once the VM runs there; see VmHost). */
export const INCOMING_SUFFIX = '.incoming';

export class VirtualDisk {
  readonly device: BlkDevice;
  /** The image file (attached or not). */
  readonly path: string;
  readonly sizeBytes: number;
  readonly blockCount: number;
  /** A temporary directory made for the image (removed with it), or null. */
  readonly #ownedDir: string | null;
  #keep = false;
  #ledger: BlockDigestLedger;

  constructor(device: BlkDevice, path: string, ownedDir: string | null) {
    this.device = device;
    this.path = path;
    this.sizeBytes = device.sizeBytes;
    this.blockCount = device.sizeBytes / BLOCK_SIZE;
    this.#ownedDir = ownedDir;
    // A new image is all holes; from here on every write this host makes is hashed as it lands.
    this.#ledger = new BlockDigestLedger(this.blockCount);
    device.onWritten((first, data) => this.#ledger.updateRun(first, data));
  }

  /**
   * The disk's contents as this host wrote them, block by block (the guest's writes through the
   * device, a migration's writes through written()): its digest is the disk digest without
   * reading the image — what a shared-storage switchover hands over with, the image itself being
   * hashed only by the side that opens it.
   */
  get ledger(): BlockDigestLedger {
    return this.#ledger;
  }

  /**
   * Blocks a migration wrote into the image (not through the device): `count` from `first`, by
   * their hashes from entry `from` of `hashes` (blockHashes: the writer hashed them already).
   */
  written(first: number, count: number, hashes: Uint8Array, from: number): void {
    for (let k = 0; k < count; k++) this.#ledger.setHash(first + k, hashes, from + k);
  }

  /** The image was opened here and hashed whole (shared storage): that is its ledger from now on. */
  adoptLedger(ledger: BlockDigestLedger): void {
    if (ledger.blockCount !== this.blockCount) {
      throw new MigrationError(
        'ERR_INTERNAL',
        `a ledger of ${ledger.blockCount} blocks for a disk of ${this.blockCount}`,
      );
    }
    this.#ledger = ledger;
  }

  /** The image the device serves; ERR_VM_STATE while detached. */
  get image(): DiskImage {
    const image = this.device.image;
    if (!image) throw new MigrationError('ERR_VM_STATE', `disk image ${this.path} is detached (another host holds it)`);
    return image;
  }

  get attached(): boolean {
    return this.device.image !== null;
  }

  /** Detach and close the image (flushed, map persisted, lock dropped). The VM must be paused (its device drained). */
  async detach(): Promise<void> {
    const image = this.device.image;
    if (!image) return;
    this.device.attachImage(null);
    await image.close();
  }

  /** Open the image at `path` (taking its lock) and serve it. ERR_DISK_IMAGE if it is missing, locked or of another size. */
  async attach(): Promise<void> {
    if (this.device.image) return;
    const image = await DiskImage.open(this.path);
    try {
      this.device.attachImage(image);
    } catch (error) {
      await image.close();
      throw error;
    }
  }

  /** Do not remove the image when the VM goes: another host's VM runs on it (shared storage). */
  keepImage(): void {
    this.#keep = true;
  }

  /** The VM is gone: stop the device, close the image, and remove it unless kept. */
  async close(): Promise<void> {
    this.device.close();
    const image = this.device.image;
    try {
      // An image that stays (shared storage) is made durable; one that goes is removed, its lock
      // dropped only after its files (see DiskImage.remove).
      if (this.#keep) await image?.close();
      else if (image) await image.remove([this.path + INCOMING_SUFFIX]);
    } finally {
      this.device.attachImage(null);
      if (!this.#keep) {
        if (!image) {
          // Detached (another host holds it, or it never opened here): only what is ours to remove.
          await fs.rm(this.path + INCOMING_SUFFIX, { force: true });
        }
        if (this.#ownedDir) await fs.rm(this.#ownedDir, { recursive: true, force: true });
      }
    }
  }
}
