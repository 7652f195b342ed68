/**
 * One QEMU-to-QEMU live migration over loopback, between a fresh pair of QEMUs, driven over QMP:
 *
 *   source: RAM = the random file (pre-allocated: every page resident, as in a VM that has used
 *           its memory — livemig's source VM has written all of its pages too), SeaBIOS runs and
 *           goes idle (no boot disk);
 *   dest:   anonymous RAM (pre-allocated or not, per configuration), `-incoming defer`;
 *   both:   capabilities and parameters set, dest `migrate-incoming tcp:127.0.0.1:0` (QEMU picks
 *           the port; query-migrate tells it), source `migrate`;
 *   then:   wait for the source's MIGRATION event saying completed (or failed) and the
 *           destination's RESUME event, read the source's query-migrate, check a sample of the
 *           destination's RAM against the file, stop both.
 *
 * Every wait has a deadline; both QEMUs and their sockets are gone when this returns or throws.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuMs } from '../bench-migrate.ts';
import { onExitCleanup } from './exit-cleanup.ts';
import { launchQemu, type QemuProcess } from './launch.ts';
import { QmpError, type JsonObject } from './qmp.ts';
import type { RamFile } from './ram-file.ts';

/** A QEMU migration configuration. */
export interface QemuConfig {
  id: string;
  label: string;
  /** prealloc=on on the destination's RAM backend (faulted in at start-up, before the migration). */
  destPrealloc: boolean;
  /** multifd channels; 0 = multifd off (one migration stream). */
  multifdChannels: number;
}

/** The configurations the benchmark compares livemig with. */
export const QEMU_CONFIGS: readonly QemuConfig[] = [
  { id: 'default', label: 'QEMU default', destPrealloc: false, multifdChannels: 0 },
  { id: 'prealloc', label: 'QEMU, destination pre-allocated', destPrealloc: true, multifdChannels: 0 },
  {
    id: 'multifd2',
    label: 'QEMU, 2 multifd channels, destination pre-allocated',
    destPrealloc: true,
    multifdChannels: 2,
  },
];

/**
 * No cap: QEMU 7.2's default max-bandwidth is 128 MiB/s (a 1 GiB migration would take 8 s by
 * the cap alone) while livemig's default is uncapped; 1 TB/s is no cap on loopback.
 */
export const UNCAPPED_BPS = 1e12;

export interface QemuMigration {
  config: QemuConfig;
  /** QEMU's own total-time: the migrate command → the source completed, ms. */
  totalTimeMs: number;
  /** Ours: `migrate` sent → the destination's RESUME event (livemig's total-time definition), ms. */
  wallMs: number;
  /** QEMU's downtime (source stop → completion), ms. */
  downtimeMs: number;
  setupTimeMs: number;
  /** ram.transferred (all of the migration stream's RAM bytes, multifd included). */
  transferredBytes: number;
  /** ram.multifd-bytes. */
  multifdBytes: number;
  /** ram.dirty-sync-count: dirty-log syncs, i.e. passes. */
  passes: number;
  /** CPU ms each QEMU process used from migrate to the destination running. */
  cpu: { source: number; dest: number };
  /** Bytes of the destination's RAM compared with the file after the migration (they matched). */
  checkedBytes: number;
}

export interface QemuMigrateOptions {
  ram: RamFile;
  config: QemuConfig;
  /** Deadline for the migration itself (migrate → completed and destination running). @default 120000 */
  timeoutMs?: number;
  /** Deadline for SeaBIOS to go idle on the source (TCG boot). @default 60000 */
  biosTimeoutMs?: number;
}

interface QueryMigrate {
  status?: string;
  'error-desc'?: string;
  'total-time'?: number;
  downtime?: number;
  'setup-time'?: number;
  ram?: { transferred?: number; 'multifd-bytes'?: number; 'dirty-sync-count'?: number };
  'socket-address'?: Array<{ type?: string; host?: string; port?: string | number }>;
}

/** Bytes of destination RAM compared with the file: from the middle, far from what SeaBIOS writes. */
const SAMPLE_BYTES = 4 * 1024 * 1024;

async function setUp(qemu: QemuProcess, config: QemuConfig, source: boolean): Promise<void> {
  const capabilities: JsonObject[] = [];
  if (config.multifdChannels > 0) capabilities.push({ capability: 'multifd', state: true });
  // MIGRATION events on the source: wait for "completed" instead of polling query-migrate.
  if (source) capabilities.push({ capability: 'events', state: true });
  if (capabilities.length) await qemu.qmp.execute('migrate-set-capabilities', { capabilities });
  const params: JsonObject = {};
  if (config.multifdChannels > 0) params['multifd-channels'] = config.multifdChannels;
  if (source) params['max-bandwidth'] = UNCAPPED_BPS;
  if (Object.keys(params).length) await qemu.qmp.execute('migrate-set-parameters', params);
}

/** Run one migration on a fresh pair of QEMUs (see the file comment). */
export async function qemuMigrateOnce(options: QemuMigrateOptions): Promise<QemuMigration> {
  const { ram, config } = options;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const dir = mkdtempSync(join(tmpdir(), 'livemig-qemu-'));
  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  const forgetDir = onExitCleanup(removeDir);
  const started: QemuProcess[] = [];
  try {
    const launched = await Promise.allSettled([
      launchQemu({
        dir,
        name: 'source',
        memoryBytes: ram.bytes,
        ram: { kind: 'file', path: ram.path, prealloc: true },
      }),
      launchQemu({
        dir,
        name: 'dest',
        memoryBytes: ram.bytes,
        ram: { kind: 'anonymous', prealloc: config.destPrealloc },
        incoming: true,
      }),
    ]);
    for (const r of launched) if (r.status === 'fulfilled') started.push(r.value);
    const failed = launched.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const [source, dest] = started as [QemuProcess, QemuProcess];
    await source.biosIdle(options.biosTimeoutMs ?? 60_000);
    await setUp(source, config, true);
    await setUp(dest, config, false);
    await dest.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    const listening = await dest.qmp.execute<QueryMigrate>('query-migrate');
    const port = listening['socket-address']?.find((a) => a.type === 'inet')?.port;
    if (port === undefined) {
      throw new QmpError('QMP_PROTOCOL', `destination query-migrate names no port: ${JSON.stringify(listening)}`);
    }

    const cpu0 = { source: cpuMs(source.child.pid), dest: cpuMs(dest.child.pid) };
    const t0 = performance.now();
    await source.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    const end = await source.qmp.waitForEvent(
      'MIGRATION',
      timeoutMs,
      (d) => d.status === 'completed' || d.status === 'failed' || d.status === 'cancelled',
    );
    if (end.data.status !== 'completed') {
      const q = await source.qmp.execute<QueryMigrate>('query-migrate');
      throw new Error(`QEMU migration ${String(end.data.status)}: ${q['error-desc'] ?? JSON.stringify(q)}`);
    }
    await dest.qmp.waitForEvent('RESUME', timeoutMs);
    const wallMs = performance.now() - t0;
    const cpu = { source: cpuMs(source.child.pid) - cpu0.source, dest: cpuMs(dest.child.pid) - cpu0.dest };
    const q = await source.qmp.execute<QueryMigrate>('query-migrate');

    // The migration moved the bytes: a sample of the destination's RAM (started all zero) equals
    // the file. Guest-physical = RAM offset below 3.5 GiB on the pc machine.
    const sampleAt = Math.floor(ram.bytes / 2 / 4096) * 4096;
    const sample = Math.min(SAMPLE_BYTES, ram.bytes - sampleAt);
    const dumpPath = join(dir, 'sample');
    await dest.qmp.execute('pmemsave', { val: sampleAt, size: sample, filename: dumpPath });
    if (!readFileSync(dumpPath).equals(ram.read(sampleAt, sample))) {
      throw new Error(`QEMU ${config.id}: the destination's RAM at ${sampleAt} differs from the file after migration`);
    }

    const num = (v: number | undefined, what: string): number => {
      if (typeof v !== 'number')
        throw new QmpError('QMP_PROTOCOL', `query-migrate has no ${what}: ${JSON.stringify(q)}`);
      return v;
    };
    return {
      config,
      totalTimeMs: num(q['total-time'], 'total-time'),
      wallMs,
      downtimeMs: num(q.downtime, 'downtime'),
      setupTimeMs: num(q['setup-time'], 'setup-time'),
      transferredBytes: num(q.ram?.transferred, 'ram.transferred'),
      multifdBytes: q.ram?.['multifd-bytes'] ?? 0,
      passes: num(q.ram?.['dirty-sync-count'], 'ram.dirty-sync-count'),
      cpu,
      checkedBytes: sample,
    };
  } finally {
    await Promise.all(started.map((q) => q.stop()));
    removeDir();
    forgetDir();
  }
}
