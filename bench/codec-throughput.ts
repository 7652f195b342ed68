/**
 * Part 4 of `npm run bench -- reduction` (issue 17): the page codecs' throughput on one core —
 * this thread, their synchronous forms — over 4 KiB `realistic` guest pages, each next to a
 * plain memory copy of the same pages measured in the same run. Goal: XBZRLE delta encode
 * ≥ 0.5 GB/s.
 *
 *  - memcpy (the baseline): each page copied with Uint8Array.set into a 256-page buffer, as the
 *    sender snapshots a batch's pages into its arena;
 *  - XBZRLE delta encode (a page's last-sent version against its current one) and decode (the
 *    delta applied to the destination's copy of the old version);
 *  - SHA-256 page hash, the dedup index's key (pageHash);
 *  - lz4 and brotli at the qualities `--compress auto` chooses among (1, 2, 5): compress and
 *    decompress of 256-page batches, with the size they reach.
 *
 * The pages: `--init realistic` memory (64 MiB by default) without its zero pages (they travel
 * as zero records, never through a codec). Deltas need a later version of each page: a copy with
 * 1–8 random 32-bit words changed, as the writing workloads store (hotset, uniform: one word of
 * a page per store). Batches hold every non-zero page in address order, incompressible ones
 * included, as the sender's batches do. All of it is ~45 MiB, twice over for the deltas: far
 * beyond the caches, as guest memory and the delta cache are during a migration.
 *
 * Rates are page bytes (uncompressed, GB = 10^9) per second in both directions. Each figure is
 * the median of REPETITIONS samples taken round-robin over all codecs after one warm-up sample
 * of each (JIT, first touch of output buffers), so drift on the shared machine hits all of them
 * alike; a sample repeats whole passes over the pages until it has run MIN_SAMPLE_MS.
 *
 * Alone: `npx tsx bench/codec-throughput.ts` prints these rows and writes nothing (bench/results
 * and BENCHMARKS.md are the full `npm run bench` run's). Environment: LIVEMIG_BENCH_CODEC_MEMORY
 * (default 64MiB).
 */
import { cpus, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseSize } from '@livemig/shared';
import {
  compressSync,
  decompressSync,
  pageHash,
  xbzrleDecode,
  xbzrleEncode,
  type CompressionCodec,
} from '@livemig/shared/codec';
import { GuestMemory, PAGE_SIZE, parseInitSpec } from '@livemig/shared/vm';
import { initialiseMemory } from '../shared/src/vm/init.ts';
import { hash32 } from '../shared/src/vm/prng.ts';
import { median, ratioRow, type BenchResult, type BenchRow } from './harness.ts';

const MEMORY = process.env.LIVEMIG_BENCH_CODEC_MEMORY ?? '64MiB';
const SEED = 17;
const BATCH_PAGES = 256;
const REPETITIONS = 7;
const MIN_SAMPLE_MS = 150;
const GOAL_DELTA_ENCODE_GBPS = 0.5;
const GB = 1e9;
const MiB = 2 ** 20;
/** Keys the edits' draws apart from anything else hashed from page numbers. */
const EDIT_KEY = 0x2545f491;

/** The compression settings measured: lz4 and the brotli qualities `--compress auto` picks from. */
const LEVELS: { name: string; codec: CompressionCodec; quality?: number }[] = [
  { name: 'lz4', codec: 'lz4' },
  { name: 'brotli q1', codec: 'brotli', quality: 1 },
  { name: 'brotli q2', codec: 'brotli', quality: 2 },
  { name: 'brotli q5', codec: 'brotli', quality: 5 },
];

/** One measured operation: a pass over all its pages, and how many page bytes a pass handles. */
interface Op {
  name: string;
  bytes: number;
  pass(): void;
}

/** The non-zero pages of a freshly initialised `realistic` VM of `bytes`, packed one after another. */
async function realisticPages(bytes: number): Promise<Uint8Array> {
  const memory = GuestMemory.allocate(bytes);
  try {
    await initialiseMemory(memory, parseInitSpec('realistic'), SEED);
    const nonZero: Uint8Array[] = [];
    for (let n = 0; n < memory.pageCount; n++) if (!memory.isZeroPage(n)) nonZero.push(memory.page(n));
    return packPages(nonZero);
  } finally {
    memory.release();
  }
}

/** A copy of `pages` with 1–8 random aligned 32-bit words of each page stored to (odd values, as hotset stores). */
function withLightEdits(pages: Uint8Array): Uint8Array {
  const edited = pages.slice();
  const words = new Uint32Array(edited.buffer);
  const wordsPerPage = PAGE_SIZE / 4;
  for (let p = 0; p < pages.length / PAGE_SIZE; p++) {
    const r = hash32(p ^ EDIT_KEY);
    for (let i = 0, k = 1 + (r & 7); i < k; i++) {
      const h = hash32((r + Math.imul(i + 1, 0x9e3779b9)) | 0);
      const at = p * wordsPerPage + (h % wordsPerPage);
      words[at] = h | 1;
    }
  }
  return edited;
}

/** Views of each page of a packed buffer (made once: no allocation inside a timed pass). */
function pageViews(packed: Uint8Array): Uint8Array[] {
  return Array.from({ length: packed.length / PAGE_SIZE }, (_, i) =>
    packed.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE),
  );
}

/** `packed` cut into batches of BATCH_PAGES pages (views; the last may be shorter). */
function batchesOf(packed: Uint8Array): Uint8Array[] {
  const batchBytes = BATCH_PAGES * PAGE_SIZE;
  return Array.from({ length: Math.ceil(packed.length / batchBytes) }, (_, b) =>
    packed.subarray(b * batchBytes, Math.min(packed.length, (b + 1) * batchBytes)),
  );
}

/** `pages` copied one after another into one buffer. */
function packPages(pages: readonly Uint8Array[]): Uint8Array {
  const packed = new Uint8Array(pages.length * PAGE_SIZE);
  pages.forEach((page, i) => packed.set(page, i * PAGE_SIZE));
  return packed;
}

/** Throughput of one sample of `op` in GB/s: whole passes until MIN_SAMPLE_MS have gone by. */
function sample(op: Op): number {
  const started = performance.now();
  let passes = 0;
  let elapsed: number;
  do {
    op.pass();
    passes++;
  } while ((elapsed = performance.now() - started) < MIN_SAMPLE_MS);
  return (op.bytes * passes) / (elapsed / 1000) / GB;
}

/** Part 4 of the reduction section: its rows and notes. */
export async function codecThroughput(): Promise<Required<BenchResult>> {
  const old = await realisticPages(parseSize(MEMORY));
  const cur = withLightEdits(old);
  const count = old.length / PAGE_SIZE;
  const oldPages = pageViews(old);
  const curPages = pageViews(cur);
  const bytes = old.length;

  // Deltas made once (for decode and their size), and checked: applied to the old pages they
  // must give the edited ones, or the figures would be of a broken codec.
  const scratch = new Uint8Array(PAGE_SIZE);
  const deltas = oldPages.map((page, i) => {
    const length = xbzrleEncode(page, curPages[i]!, scratch, PAGE_SIZE);
    if (length < 0) throw new Error(`codec bench: page ${i}'s delta is not smaller than the page`);
    return scratch.slice(0, length);
  });
  const target = old.slice();
  const targetPages = pageViews(target);
  deltas.forEach((delta, i) => xbzrleDecode(delta, targetPages[i]!));
  if (Buffer.compare(target, cur) !== 0) throw new Error('codec bench: XBZRLE decode did not give the edited pages');
  const deltaBytes = deltas.reduce((sum, d) => sum + d.length, 0);

  const arena = new Uint8Array(BATCH_PAGES * PAGE_SIZE);
  let sink = 0; // results are summed so that no pass is work the engine could drop
  const ops: Op[] = [
    {
      name: 'memcpy',
      bytes,
      pass() {
        for (let i = 0; i < count; i++) arena.set(oldPages[i]!, (i % BATCH_PAGES) * PAGE_SIZE);
      },
    },
    {
      name: 'delta encode',
      bytes,
      pass() {
        for (let i = 0; i < count; i++) sink += xbzrleEncode(oldPages[i]!, curPages[i]!, scratch, PAGE_SIZE);
      },
    },
    {
      name: 'delta decode',
      bytes,
      pass() {
        // Onto pages that already hold the result: the same writes as onto the old version.
        for (let i = 0; i < count; i++) xbzrleDecode(deltas[i]!, targetPages[i]!);
      },
    },
    {
      name: 'hash',
      bytes,
      pass() {
        for (let i = 0; i < count; i++) sink += pageHash(curPages[i]!).length;
      },
    },
  ];
  const batches = batchesOf(old);
  const sizes = new Map<string, number>();
  for (const level of LEVELS) {
    const options = level.quality === undefined ? {} : { brotliQuality: level.quality };
    const compressed = batches.map((batch) => compressSync(batch, level.codec, options));
    compressed.forEach((block, b) => {
      if (Buffer.compare(decompressSync(block, batches[b]!.length, level.codec), batches[b]!) !== 0) {
        throw new Error(`codec bench: ${level.name} batch ${b} did not round-trip`);
      }
    });
    sizes.set(level.name, compressed.reduce((sum, block) => sum + block.length, 0) / bytes);
    ops.push(
      {
        name: `${level.name} compress`,
        bytes,
        pass() {
          for (const batch of batches) sink += compressSync(batch, level.codec, options).length;
        },
      },
      {
        name: `${level.name} decompress`,
        bytes,
        pass() {
          compressed.forEach((block, b) => {
            sink += decompressSync(block, batches[b]!.length, level.codec).length;
          });
        },
      },
    );
  }

  const loadBefore = loadavg()[0]!;
  const samples = new Map<string, number[]>(ops.map((op) => [op.name, []]));
  for (const op of ops) sample(op); // warm-up
  for (let rep = 0; rep < REPETITIONS; rep++) for (const op of ops) samples.get(op.name)!.push(sample(op));
  if (!(sink > 0)) throw new Error('codec bench: the codecs produced nothing');
  const gbps = (name: string): number => median(samples.get(name)!);

  const prefix = `codec, one core, ${MEMORY} realistic`;
  const baseline = { name: 'memcpy of the same pages', value: gbps('memcpy'), unit: 'GB/s' };
  const row = (name: string, op: string): BenchRow =>
    ratioRow({ name: `${prefix}: ${name}`, value: gbps(op), unit: 'GB/s' }, baseline);
  const rows: BenchRow[] = [
    {
      name: `${prefix}: memcpy 4 KiB pages (Uint8Array.set into a 256-page buffer)`,
      value: gbps('memcpy'),
      unit: 'GB/s',
    },
    {
      ...row('XBZRLE delta encode (1–8 words changed per page)', 'delta encode'),
      goal: `≥ ${GOAL_DELTA_ENCODE_GBPS} GB/s`,
      met: gbps('delta encode') >= GOAL_DELTA_ENCODE_GBPS,
    },
    row('XBZRLE delta decode', 'delta decode'),
    row('SHA-256 page hash (dedup)', 'hash'),
  ];
  for (const { name } of LEVELS) {
    rows.push(
      row(`${name} compress (256-page batches)`, `${name} compress`),
      row(`${name} decompress`, `${name} decompress`),
      { name: `${prefix}: ${name} compressed size`, value: sizes.get(name)!, unit: '× input' },
    );
  }
  const notes = [
    `Codec part: ${count} non-zero pages (${(bytes / MiB).toFixed(1)} MiB) of a ${MEMORY} \`realistic\` VM; ` +
      `median of ${REPETITIONS} samples (each ≥ ${MIN_SAMPLE_MS} ms of whole passes) after a warm-up, round-robin ` +
      'over the codecs; rates in page bytes (uncompressed) per second, GB = 10^9, on this thread with the synchronous APIs.',
    `Codec part: deltas against a copy with 1–8 random 32-bit words changed per page average ` +
      `${(deltaBytes / count).toFixed(1)} bytes a page; xbzrleEncode alone, both versions read from memory (the delta cache adds a snapshot copy and a store per page).`,
    'Codec part: compression batches hold every non-zero page (incompressible ones too, as the sender batches them); ' +
      'compressed size is all output ÷ all input.',
    `Codec part: load average ${loadBefore.toFixed(1)} before the samples, ${loadavg()[0]!.toFixed(1)} after, ` +
      `on ${cpus().length} CPUs (the machine is shared: absolute rates move with it, ratios to memcpy less).`,
  ];
  return { rows, notes };
}

/** `npx tsx bench/codec-throughput.ts`: this part alone, printed, nothing written. */
async function runAlone(): Promise<void> {
  const { rows, notes } = await codecThroughput();
  const width = Math.max(...rows.map((r) => r.name.length));
  for (const r of rows) {
    const vs = r.ratio === undefined ? '' : `  ${r.ratio.toFixed(3)}× memcpy`;
    const goal = r.goal === undefined ? '' : `  goal ${r.goal}: ${r.met ? 'met' : 'NOT met'}`;
    process.stdout.write(`${r.name.padEnd(width)}  ${r.value.toFixed(3).padStart(7)} ${r.unit}${vs}${goal}\n`);
  }
  for (const note of notes) process.stdout.write(`- ${note}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await runAlone();
