/**
 * `npm run bench -- qemu`: livemig against QEMU on this machine, same run, side by side (issue
 * 18's S1 comparison). The same guest size of random memory over loopback, migrated by:
 *
 * - QEMU (Debian's qemu-system-x86_64, TCG) in three configurations (bench/qemu/migrate-once.ts):
 *   its defaults (bandwidth cap lifted); the destination's RAM pre-allocated; 2 multifd channels
 *   and the destination pre-allocated. A fresh pair of QEMUs per migration, driven over QMP
 *   (bench/qemu/qmp.ts), the source's RAM a file of random bytes (bench/qemu/ram-file.ts) so every
 *   QEMU run moves the same contents.
 * - livemig with its defaults: two fresh agent processes, an idle VM of random pages
 *   (bench/bench-migrate.ts migrateOnce, as S1 in the migration section).
 *
 * Runs interleave (QEMU's first run on a fresh pair can be 2× slower, PERFORMANCE.md) and rotate
 * their order each repeat; figures are medians. Goals (issue 18): livemig faster than QEMU's
 * default in every run, and within 1.25× of QEMU's best configuration.
 *
 * Environment: LIVEMIG_BENCH_QEMU_RUNS (repeats, default 3), LIVEMIG_BENCH_QEMU_MEMORY (guest
 * size, default 1GiB; 64MiB–256MiB while developing), LIVEMIG_BENCH_WARM_GIB (memory warmed
 * before measuring, default 6; 0 = none). Skips, saying why, where qemu-system-x86_64 is missing.
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { downtimeOf } from '@livemig/shared/report';
import { formatBytes, parseSize } from '../shared/src/units.ts';
import { migrateOnce, warmMemory, type Migrated } from './bench-migrate.ts';
import { median, ratioRow, type BenchRow, type BenchSection } from './harness.ts';
import { qemuAvailable } from './qemu/launch.ts';
import { QEMU_CONFIGS, qemuMigrateOnce, UNCAPPED_BPS, type QemuMigration } from './qemu/migrate-once.ts';
import { createRamFile } from './qemu/ram-file.ts';

const RUNS = Number(process.env.LIVEMIG_BENCH_QEMU_RUNS ?? 3);
const MEMORY = parseSize(process.env.LIVEMIG_BENCH_QEMU_MEMORY ?? '1GiB');
const WARM_GIB = Number(process.env.LIVEMIG_BENCH_WARM_GIB ?? 6);
/** What livemig's best must be within, as a multiple of QEMU's best configuration. */
const BEST_FACTOR = 1.25;

const fmt = (n: number, digits = 0): string => n.toFixed(digits);
const list = (values: number[], digits = 0): string => values.map((v) => fmt(v, digits)).join(' / ');

interface LivemigRun {
  totalMs: number;
  downtimeMs: number;
  setupMs: number;
  wireBytes: number;
  cpu: Migrated['cpu'];
}

/** The commit livemig ran at, and whether its code had uncommitted changes (a shared tree). */
function commitOf(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync(
      'git',
      ['status', '--porcelain', '--', 'shared', 'agent', 'agent-source', 'agent-dest', 'cli'],
      {
        encoding: 'utf8',
      },
    ).trim();
    return dirty ? `${head} with uncommitted changes in ${dirty.split('\n').length} files` : head;
  } catch {
    return 'unknown';
  }
}

const section: BenchSection = {
  id: 'qemu',
  title: 'livemig vs QEMU, same run (S1 idle random memory, loopback)',
  description:
    "`npm run bench -- qemu`. The same size of random guest memory migrated over loopback by QEMU (Debian's qemu-system-x86_64, TCG; a fresh pair per run, driven over QMP; three configurations) and by livemig with its defaults (two fresh agent processes), runs interleaved, medians. Total time for both is the migrate command → the destination running.",
  async run() {
    const available = qemuAvailable();
    if (!available.ok) {
      process.stderr.write(`bench qemu: skipped: ${available.reason}\n`);
      return { rows: [], notes: [`Skipped: ${available.reason}.`] };
    }
    if (!Number.isInteger(RUNS) || RUNS < 1) throw new RangeError(`LIVEMIG_BENCH_QEMU_RUNS must be ≥ 1, got ${RUNS}`);
    const notes: string[] = [];
    const loadAtStart = loadavg()[0]!;
    const size = formatBytes(MEMORY);
    if (WARM_GIB > 0) {
      const msPerGiB = await warmMemory(WARM_GIB);
      notes.push(
        `Before measuring, a throwaway process touched and freed ${WARM_GIB} GiB (${fmt(msPerGiB)} ms per GiB): this VM's first touch of memory never used since boot is slow and would land on whichever run first gets it. That figure is also what fresh memory costs in this run: QEMU's default destination (RAM faulted in during the copy) and livemig's destination pay it inside the migration; the pre-allocated QEMU destinations pay it at start-up, off the clock.`,
      );
    }

    const qemu = new Map<string, QemuMigration[]>(QEMU_CONFIGS.map((c) => [c.id, []]));
    const livemig: LivemigRun[] = [];
    const ram = createRamFile(MEMORY);
    try {
      const kinds = [...QEMU_CONFIGS.map((c) => c.id), 'livemig'];
      for (let rep = 0; rep < RUNS; rep++) {
        // Rotate the order each repeat, so no configuration always runs first (or after livemig).
        const order = [...kinds.slice(rep % kinds.length), ...kinds.slice(0, rep % kinds.length)];
        for (const kind of order) {
          if (kind === 'livemig') {
            const { report, cpu } = await migrateOnce({ memory: MEMORY, init: 'random', workload: 'idle' });
            const run: LivemigRun = {
              totalMs: report.times.totalMs,
              downtimeMs: downtimeOf(report),
              setupMs: report.times.setupMs,
              wireBytes: report.bytes.wire,
              cpu,
            };
            livemig.push(run);
            process.stderr.write(
              `  run ${rep + 1}: livemig total ${fmt(run.totalMs)} ms, downtime ${fmt(run.downtimeMs, 1)} ms\n`,
            );
          } else {
            const config = QEMU_CONFIGS.find((c) => c.id === kind)!;
            const m = await qemuMigrateOnce({ ram, config });
            qemu.get(kind)!.push(m);
            process.stderr.write(
              `  run ${rep + 1}: ${config.label}: total ${fmt(m.wallMs)} ms (QEMU's total-time ${m.totalTimeMs}), downtime ${m.downtimeMs} ms\n`,
            );
          }
        }
      }
    } finally {
      ram.remove();
    }

    const wall = (id: string): number[] => qemu.get(id)!.map((m) => m.wallMs);
    const medians = QEMU_CONFIGS.map((c) => ({ config: c, wallMs: median(wall(c.id)) }));
    const defaultMs = medians[0]!.wallMs;
    const best = medians.reduce((a, b) => (b.wallMs < a.wallMs ? b : a));
    const lmTotal = livemig.map((r) => r.totalMs);
    const lmMedian = median(lmTotal);
    const beatsDefaultEveryRun = lmTotal.every((ms, i) => ms < wall('default')[i]!);
    const downtimeOfConfig = (id: string): number => median(qemu.get(id)!.map((m) => m.downtimeMs));

    const rows: BenchRow[] = [];
    for (const { config, wallMs } of medians) {
      rows.push({
        name: `${config.label}: total time, migrate → destination running, ${size} random (median of ${RUNS})`,
        value: wallMs,
        unit: 'ms',
      });
    }
    rows.push(
      {
        ...ratioRow(
          {
            name: `livemig, defaults: total time, migrate → destination running, ${size} random (median of ${RUNS})`,
            value: lmMedian,
            unit: 'ms',
          },
          { name: 'QEMU default, same run', value: defaultMs, unit: 'ms' },
        ),
        goal: '< QEMU default in every run',
        met: beatsDefaultEveryRun,
      },
      {
        ...ratioRow(
          { name: `livemig, defaults: total time vs QEMU's best configuration`, value: lmMedian, unit: 'ms' },
          { name: `${best.config.label}, same run`, value: best.wallMs, unit: 'ms' },
        ),
        goal: `≤ ${BEST_FACTOR}× QEMU best`,
        met: lmMedian <= BEST_FACTOR * best.wallMs,
      },
      ratioRow(
        { name: 'livemig, defaults: downtime (median)', value: median(livemig.map((r) => r.downtimeMs)), unit: 'ms' },
        { name: 'QEMU default downtime, same run', value: downtimeOfConfig('default'), unit: 'ms' },
      ),
      ratioRow(
        {
          name: 'livemig, defaults: downtime vs QEMU best configuration',
          value: median(livemig.map((r) => r.downtimeMs)),
          unit: 'ms',
        },
        { name: `${best.config.label} downtime, same run`, value: downtimeOfConfig(best.config.id), unit: 'ms' },
      ),
    );

    for (const c of QEMU_CONFIGS) {
      const runs = qemu.get(c.id)!;
      notes.push(
        `${c.label} (${RUNS} runs, in order): migrate → destination RESUME ${list(runs.map((m) => m.wallMs))} ms; QEMU's own total-time (migrate → source completed) ${list(runs.map((m) => m.totalTimeMs))} ms; setup ${list(runs.map((m) => m.setupTimeMs))} ms; downtime ${list(runs.map((m) => m.downtimeMs))} ms; passes ${runs.map((m) => m.passes).join(' / ')}; transferred ${list(runs.map((m) => m.transferredBytes / 2 ** 20))} MiB${c.multifdChannels ? ` (multifd ${list(runs.map((m) => m.multifdBytes / 2 ** 20))} MiB)` : ''}; CPU source + destination ${list(runs.map((m) => m.cpu.source + m.cpu.dest))} ms.`,
      );
    }
    notes.push(
      `livemig (${RUNS} runs, at ${commitOf()}): total ${list(lmTotal)} ms (setup ${list(livemig.map((r) => r.setupMs))} ms), downtime ${list(
        livemig.map((r) => r.downtimeMs),
        1,
      )} ms, wire ${list(livemig.map((r) => r.wireBytes / 2 ** 20))} MiB; CPU source + destination ${list(livemig.map((r) => r.cpu.source + r.cpu.dest))} ms. Faster than QEMU default, run by run: ${lmTotal.map((ms, i) => (ms < wall('default')[i]! ? 'yes' : 'no')).join(' / ')}.`,
      `Against QEMU's own total-time (it stops the clock when the source completes, before the destination has read the last bytes and started), livemig's median is ${fmt(lmMedian / median(qemu.get('default')!.map((m) => m.totalTimeMs)), 2)}× QEMU default and ${fmt(lmMedian / median(qemu.get(best.config.id)!.map((m) => m.totalTimeMs)), 2)}× ${best.config.label}.`,
      `QEMU: ${qemuAvailable().ok ? (qemuAvailable() as { version: string }).version : '?'}, TCG (no KVM), machine pc, ${size} RAM in one backend (id mem), no disks, no NIC (-nodefaults). The guest runs SeaBIOS, which finds nothing to boot and waits, idle; the migration starts once its "No bootable device" line appears on the debug port. A running idle guest rather than -S, because livemig's S1 VM runs (idle) too and a paused QEMU source leaves the destination paused: downtime and "destination running" would mean nothing. SeaBIOS writes a few pages (low memory, tables at the top of RAM); every other page is the file's.`,
      `Source RAM: memory-backend-file on a ${size} file of random bytes in /dev/shm, share=off, prealloc=on (every page resident before the migration, as in livemig's source whose VM has written all its memory). Destination RAM: memory-backend-ram, prealloc=off (QEMU default) or prealloc=on (pre-allocated; QEMU faults it in at start-up, before the migration and off the clock), started with -incoming defer and migrate-incoming tcp:127.0.0.1:0. All configurations lift QEMU 7.2's default bandwidth cap of 128 MiB/s (max-bandwidth ${UNCAPPED_BPS}), as livemig is uncapped by default; downtime-limit stays at its default 300 ms. Multifd: capability multifd and multifd-channels 2 on both ends.`,
      "Total time for both is the migrate command → the destination running (QEMU: the destination's RESUME event seen by this driver over QMP; livemig: the destination confirming Resumed). QEMU's downtime is its own (source stop → completion); livemig's is source pause → destination resume. After each QEMU run a 4 MiB sample from the middle of the destination's RAM (pmemsave) was compared with the file and matched; livemig checks its own digests.",
      `Each QEMU run starts a fresh pair (the source pre-allocating its RAM, the destination pre-allocating when configured) and each livemig run two fresh agents; runs interleave, the order rotating each repeat. The machine has ${cpus().length} vCPUs shared with other jobs (1-minute load average ${fmt(loadAtStart, 1)} at the start, ${fmt(loadavg()[0]!, 1)} at the end): compare ratios within this run, not absolute figures.`,
    );
    return { rows, notes };
  },
};

export default section;
