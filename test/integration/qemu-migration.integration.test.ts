/**
 * The QEMU benchmark's driver against the real QEMU (bench/qemu/): a 64 MiB migration between a
 * fresh pair of qemu-system-x86_64 (TCG) completes, QEMU's figures come back from query-migrate,
 * the destination's RAM holds the file's bytes, and nothing is left behind — no QEMU process, no
 * socket — after a migration or after QEMU fails to start. Skipped, saying why, where
 * qemu-system-x86_64 is not installed — except in CI as root, where that fails the suite.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { launchQemu, qemuAvailable } from '../../bench/qemu/launch.ts';
import { QEMU_CONFIGS, qemuMigrateOnce } from '../../bench/qemu/migrate-once.ts';
import { createRamFile, type RamFile } from '../../bench/qemu/ram-file.ts';
import { describeWhenAvailable } from '../helpers/prerequisites.ts';

const MiB = 1024 * 1024;
const available = qemuAvailable();

/** qemu-system processes whose parent is this process (what the driver must not leave running). */
function ourQemus(): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === process.pid && stat.includes('(qemu-system-')) found.push(Number(entry));
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

/** Our temporary directories for sockets (livemig-qemu-*, not the RAM file's livemig-qemu-ram-*). */
const socketDirs = (): string[] => readdirSync(tmpdir()).filter((d) => /^livemig-qemu-(?!ram-)/.test(d));

// Outside CI without QEMU: skipped, saying why; in CI as root (.ci/run installs qemu-system-x86) it must run.
describeWhenAvailable(
  'QEMU migration driver (real qemu-system-x86_64, 64 MiB)',
  available.ok ? undefined : available.reason,
  () => {
    let ram: RamFile;
    let dirsBefore: string[];

    beforeAll(() => {
      ram = createRamFile(64 * MiB);
      dirsBefore = socketDirs();
    });

    afterAll(() => {
      ram?.remove();
    });

    it.each(QEMU_CONFIGS.filter((c) => c.id !== 'prealloc'))(
      '$label: completes, reports its figures, the destination holds the file’s bytes, nothing left running',
      async (config) => {
        const m = await qemuMigrateOnce({ ram, config, timeoutMs: 30_000 });
        expect(m.config.id).toBe(config.id);
        expect(m.checkedBytes).toBeGreaterThan(0);
        // Every page but a few SeaBIOS left zero (holes below 1 MiB) is random: the stream carried them all.
        expect(m.transferredBytes).toBeGreaterThanOrEqual(62 * MiB);
        if (config.multifdChannels) expect(m.multifdBytes).toBeGreaterThanOrEqual(62 * MiB);
        else expect(m.multifdBytes).toBe(0);
        expect(m.totalTimeMs).toBeGreaterThan(0);
        expect(m.downtimeMs).toBeLessThanOrEqual(m.totalTimeMs);
        // Ours runs to the destination's RESUME, later than QEMU's source-side completion (ms granularity).
        expect(m.wallMs).toBeGreaterThanOrEqual(m.totalTimeMs - 1);
        expect(m.passes).toBeGreaterThanOrEqual(1);
        expect(ourQemus()).toStrictEqual([]);
        expect(socketDirs()).toStrictEqual(dirsBefore);
      },
    );

    it('a QEMU that fails to start: a typed error with its stderr, no process, no socket left', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'qemu-launch-test-'));
      try {
        const err = await launchQemu({
          dir,
          name: 'broken',
          memoryBytes: 64 * MiB,
          ram: { kind: 'file', path: join(dir, 'no-such-file', 'ram'), prealloc: false },
          startTimeoutMs: 20_000,
        }).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'QMP_CONNECT' });
        expect((err as Error).message).toMatch(/broken QEMU exited .*while starting\n.*no-such-file/s);
        expect(ourQemus()).toStrictEqual([]);
        expect(existsSync(join(dir, 'broken.qmp.sock'))).toBe(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);
