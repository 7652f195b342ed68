/**
 * The image lock: `<image>.lock`, created exclusively (O_EXCL) by whoever opens the image and
 * removed when it closes it, so two agents on shared storage never both run a VM on one image
 * (QEMU takes fcntl locks on its images for the same reason; a lock *file* also works on the
 * NFS-like volumes shared storage lives on, where byte-range locks may not). The file names its
 * holder — host name and pid — so a refusal says who holds it, and a lock left by a process of
 * this host that no longer exists (killed) is taken over rather than locking the image forever.
 * A lock held by another host is never taken over: only its host can know it is stale.
 */
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import { MigrationError } from '../../errors.ts';

export const LOCK_SUFFIX = '.lock';

interface Holder {
  host: string;
  pid: number;
}

/** Takes the lock of `imagePath`; resolves with its release (idempotent). ERR_DISK_IMAGE if another process holds it. */
export async function lockImage(imagePath: string): Promise<() => Promise<void>> {
  const path = imagePath + LOCK_SUFFIX;
  const me: Holder = { host: hostname(), pid: process.pid };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.writeFile(path, JSON.stringify(me), { flag: 'wx', mode: 0o600 });
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        await fs.rm(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new MigrationError('ERR_DISK_IMAGE', `could not lock disk image ${imagePath}: ${String(err)}`, {
          cause: err,
        });
      }
    }
    const holder = await readHolder(path);
    if (holder && (holder.host !== me.host || alive(holder.pid))) {
      throw new MigrationError(
        'ERR_DISK_IMAGE',
        `disk image ${imagePath} is in use by process ${holder.pid} on ${holder.host} (${path}); ` +
          'a VM runs on it there',
      );
    }
    // Stale (its process is gone) or unreadable (a writer killed mid-write): take it over.
    await fs.rm(path, { force: true });
  }
  throw new MigrationError('ERR_DISK_IMAGE', `could not lock disk image ${imagePath}: someone else keeps taking it`);
}

async function readHolder(path: string): Promise<Holder | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(path, 'utf8')) as Partial<Holder>;
    if (typeof parsed.host === 'string' && Number.isSafeInteger(parsed.pid)) return parsed as Holder;
  } catch {
    // Gone meanwhile, or not ours: treated as stale.
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
