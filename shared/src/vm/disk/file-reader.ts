/**
 * A read-only view of an image file that another process holds open, locked and writing: what
 * a shared-storage destination reads to hash the image ahead of the switchover (DiskLoad's
 * pre-hash), without the image's lock and without its allocation map (which blocks to read
 * comes from the source, DiskAllocated). Whatever a running guest changes meanwhile is hashed
 * again at the stop point (DiskWritten), so a torn read here costs nothing but that.
 */
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { MigrationError } from '../../errors.ts';
import { BLOCK_SIZE } from './image.ts';
import type { BlockSource } from './read-blocks.ts';

export class ImageFileReader implements BlockSource {
  readonly path: string;
  readonly blockCount: number;
  readonly #file: FileHandle;

  private constructor(path: string, file: FileHandle, blockCount: number) {
    this.path = path;
    this.#file = file;
    this.blockCount = blockCount;
  }

  /** Opens `path` read-only; ERR_DISK_IMAGE if it cannot, or if it is not `blockCount` blocks long. */
  static async open(path: string, blockCount: number): Promise<ImageFileReader> {
    let file: FileHandle;
    try {
      file = await fs.open(path, 'r');
    } catch (err) {
      throw new MigrationError('ERR_DISK_IMAGE', `could not open ${path} to read it: ${String(err)}`, { cause: err });
    }
    const { size } = await file.stat();
    if (size !== blockCount * BLOCK_SIZE) {
      await file.close();
      throw new MigrationError('ERR_DISK_IMAGE', `${path} is ${size} bytes, not the ${blockCount} blocks announced`);
    }
    return new ImageFileReader(path, file, blockCount);
  }

  async readSpan(first: number, count: number, into: Uint8Array): Promise<Uint8Array> {
    if (!(Number.isSafeInteger(first) && count >= 1 && first >= 0 && first + count <= this.blockCount)) {
      throw new MigrationError('ERR_BLOCK_OUT_OF_RANGE', `blocks ${first}+${count} are outside ${this.path}`);
    }
    const bytes = count * BLOCK_SIZE;
    let done = 0;
    while (done < bytes) {
      const { bytesRead } = await this.#file.read(into, done, bytes - done, first * BLOCK_SIZE + done);
      if (bytesRead === 0) throw new MigrationError('ERR_DISK_IMAGE', `${this.path}: short read at block ${first}`);
      done += bytesRead;
    }
    return into.subarray(0, bytes);
  }

  readBlocks(first: number, count: number, into?: Uint8Array): Promise<Uint8Array> {
    return this.readSpan(first, count, into ?? new Uint8Array(count * BLOCK_SIZE));
  }

  async close(): Promise<void> {
    await this.#file.close();
  }
}
