/**
 * The guest-RAM file of the QEMU benchmark: `bytes` of random data that every source QEMU maps
 * privately as its RAM (memory-backend-file, share=off), so each run migrates the same contents.
 *
 * It lives on /dev/shm when there is one: a file on a disk-backed /tmp would be written back to
 * disk in the background while migrations are being timed. Removed by `remove()` or, if the
 * process dies first, by the exit hook.
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onExitCleanup } from './exit-cleanup.ts';

export interface RamFile {
  readonly path: string;
  readonly bytes: number;
  /** `length` bytes of the file from `offset` (to compare with what a QEMU's guest holds). */
  read(offset: number, length: number): Buffer;
  /** Delete the file and its directory. Safe to call twice. */
  remove(): void;
}

const CHUNK = 64 * 1024 * 1024;

/** Write `bytes` (a multiple of 4 KiB) of random data to a fresh file. */
export function createRamFile(bytes: number): RamFile {
  if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % 4096) {
    throw new RangeError(`guest RAM must be a positive multiple of 4 KiB, got ${bytes}`);
  }
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, 'livemig-qemu-ram-'));
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  const forget = onExitCleanup(remove);
  const path = join(dir, 'guest-ram');
  try {
    const fd = openSync(path, 'w');
    try {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, bytes));
      for (let at = 0; at < bytes; at += buf.length) {
        const n = Math.min(buf.length, bytes - at);
        randomFillSync(buf, 0, n);
        writeSync(fd, buf, 0, n, at);
      }
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    remove();
    forget();
    throw err;
  }
  return {
    path,
    bytes,
    read(offset, length) {
      const out = Buffer.alloc(length);
      const fd = openSync(path, 'r');
      try {
        readSync(fd, out, 0, length, offset);
      } finally {
        closeSync(fd);
      }
      return out;
    },
    remove() {
      remove();
      forget();
    },
  };
}
