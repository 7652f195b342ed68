/**
 * The multifd data plane measured on its own (issue 18): `npx tsx bench/multifd-pipeline.ts`.
 * Guest memory of random pages in one process's SharedArrayBuffers to another process's
 * (pre-touched, as QEMU's best configuration pre-allocates its destination), over loopback, through
 * N channel workers on each side (shared/src/multifd; test/helpers/multifd-pair.ts), N = 1, 2, 3,
 * plaintext and TLS 1.3 — each page read from guest memory, hashed, framed, sent, read in place into
 * the destination's memory and hashed again, the round ended by every channel's marker and the
 * destination's barrier. In the same run, interleaved: the raw Node socket baseline
 * (bench/raw-socket-peer.ts: the same bytes, no protocol, plaintext and TLS) and the engine's S1
 * today (bench/bench-migrate.ts migrateOnce: one JavaScript thread per agent, whole migration).
 *
 * Time of a multifd cell: the source's sendRound() call → the destination's barrier complete (one
 * machine's clock, both processes). Fresh processes per run; medians of RUNS; each run's digests
 * (page-hash table and digestMemory, both sides) are checked equal, outside the timing.
 *
 * Environment: LIVEMIG_BENCH_MULTIFD_MEMORY (default 1GiB), LIVEMIG_BENCH_MULTIFD_RUNS (default 3),
 * LIVEMIG_BENCH_MULTIFD_CELLS (cell names to run, separated by ';', default all),
 * LIVEMIG_BENCH_MULTIFD_ENGINE=0 to leave out the engine's S1 (it takes longest),
 * LIVEMIG_BENCH_MULTIFD_QEMU=0 to leave out QEMU (its default and its best configuration: 2 multifd
 * channels, destination pre-allocated; bench/qemu, skipped where QEMU is not installed).
 */
import { loadavg } from 'node:os';
import { parseSize } from '../shared/src/units.ts';
import { connectPair, digests, startPair, transferRound, type PairOptions } from '../test/helpers/multifd-pair.ts';
import { S1, cpuMs, migrateOnce, rawOnce } from './bench-migrate.ts';
import { median } from './harness.ts';
import { securePki } from '../cli/lab/secure.ts';
import type { ThrowawayPki } from '../cli/throwaway-pki.ts';
import { qemuAvailable } from './qemu/launch.ts';
import { QEMU_CONFIGS, qemuMigrateOnce } from './qemu/migrate-once.ts';
import { createRamFile, type RamFile } from './qemu/ram-file.ts';

const MEMORY = parseSize(process.env.LIVEMIG_BENCH_MULTIFD_MEMORY ?? '1GiB');
const RUNS = Number(process.env.LIVEMIG_BENCH_MULTIFD_RUNS ?? 3);
const ONLY = process.env.LIVEMIG_BENCH_MULTIFD_CELLS?.split(';');
const ENGINE = process.env.LIVEMIG_BENCH_MULTIFD_ENGINE !== '0';

interface Sample {
  ms: number;
  cpuMs: number;
}

interface Cell {
  name: string;
  run(pki: ThrowawayPki): Promise<Sample>;
}

async function multifdOnce(options: PairOptions, check: boolean): Promise<Sample> {
  const pair = await startPair(options, 60_000);
  try {
    await connectPair(pair, 20_000);
    const cpu0 = cpuMs(pair.source.pid) + cpuMs(pair.dest.pid);
    const result = await transferRound(pair, 0, 120_000);
    const cpu = cpuMs(pair.source.pid) + cpuMs(pair.dest.pid) - cpu0;
    if (result.verdict.pages !== MEMORY / 4096 || !result.verdict.exact) {
      throw new Error(`round 0: ${JSON.stringify(result.verdict)}`);
    }
    if (check) {
      const { source, dest } = await digests(pair, 120_000);
      if (source.hashes !== source.memory || dest.hashes !== dest.memory || source.memory !== dest.memory) {
        throw new Error(`digests differ: source ${JSON.stringify(source)}, dest ${JSON.stringify(dest)}`);
      }
    }
    return { ms: result.ms, cpuMs: cpu };
  } finally {
    await pair.stop();
  }
}

const cells: Cell[] = [
  { name: 'raw socket', run: async () => rawOnce(MEMORY).then((r) => ({ ms: r.ms, cpuMs: r.cpu })) },
  { name: 'raw socket TLS', run: async (pki) => rawOnce(MEMORY, pki).then((r) => ({ ms: r.ms, cpuMs: r.cpu })) },
];
for (const tls of [false, true]) {
  for (const channels of [1, 2, 3]) {
    const name = `multifd N=${channels}${tls ? ' TLS' : ''}`;
    cells.push({
      name,
      run: (pki) => multifdOnce({ memoryBytes: MEMORY, channels, ...(tls ? { pkiDir: pki.dir } : {}) }, true),
    });
  }
}
// What the page hashing costs (both ends): the same pipeline with the workers hashing nothing.
cells.push({
  name: 'multifd N=2, no page hashing (cost of the digest)',
  run: () => multifdOnce({ memoryBytes: MEMORY, channels: 2, hashPages: false }, false),
});

// The partition modes side by side (partition.ts): on uniform memory, and on memory whose first
// half is zero pages (stripes then give one channel all the zero pages, the other all the data).
for (const init of ['random', 'half-zero'] as const) {
  for (const mode of ['batches', 'stripes'] as const) {
    cells.push({
      name: `partition N=2 ${mode}${init === 'half-zero' ? ', half zero' : ''}`,
      run: () => multifdOnce({ memoryBytes: MEMORY, channels: 2, mode, init }, false),
    });
  }
}
if (ENGINE && MEMORY === S1.vm.memory) {
  cells.push({
    name: 'engine S1 (migrateOnce, total)',
    run: async () => {
      const { report, cpu } = await migrateOnce(S1.vm);
      return { ms: report.times.totalMs, cpuMs: cpu.source + cpu.dest };
    },
  });
}

// QEMU 7.2 on the same memory size, same run (bench/qemu: a fresh pair per run; wall time
// migrate → destination running, the whole migration): its default and its best configuration.
let ram: RamFile | undefined;
const QEMU = process.env.LIVEMIG_BENCH_MULTIFD_QEMU !== '0' && qemuAvailable().ok;
if (QEMU) {
  for (const id of ['default', 'multifd2']) {
    const config = QEMU_CONFIGS.find((c) => c.id === id)!;
    cells.push({
      name: config.label,
      run: async () => {
        ram ??= createRamFile(MEMORY);
        const m = await qemuMigrateOnce({ ram, config });
        return { ms: m.wallMs, cpuMs: m.cpu.source + m.cpu.dest };
      },
    });
  }
}

const selected = cells.filter((cell) => !ONLY || ONLY.includes(cell.name));
const samples = new Map<string, Sample[]>(selected.map((cell) => [cell.name, []]));
const pki = await securePki();
const started = performance.now();
try {
  for (let run = 0; run < RUNS; run++) {
    // Rotate the order each run: no cell always runs first (or right after the heaviest).
    const order = selected.map((_, i) => selected[(i + run) % selected.length]!);
    for (const cell of order) {
      const sample = await cell.run(pki);
      samples.get(cell.name)!.push(sample);
      console.error(
        `run ${run + 1}/${RUNS} ${cell.name}: ${sample.ms.toFixed(0)} ms, CPU ${sample.cpuMs.toFixed(0)} ms (load ${loadavg()[0]!.toFixed(1)})`,
      );
    }
  }
} finally {
  await pki.remove();
  ram?.remove();
}

const mb = MEMORY / 1e6;
console.log(
  `\n${(MEMORY / 1024 ** 2).toFixed(0)} MiB of random pages, loopback, medians of ${RUNS} (took ${((performance.now() - started) / 1000).toFixed(0)} s; load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')})\n`,
);
console.log('| path | ms (median) | MB/s | runs (ms) | CPU ms (both processes, median) |');
console.log('|---|---|---|---|---|');
for (const cell of selected) {
  const list = samples.get(cell.name)!;
  const ms = median(list.map((s) => s.ms));
  console.log(
    `| ${cell.name} | ${ms.toFixed(0)} | ${(mb / (ms / 1000)).toFixed(0)} | ${list.map((s) => s.ms.toFixed(0)).join(' / ')} | ${median(list.map((s) => s.cpuMs)).toFixed(0)} |`,
  );
}
