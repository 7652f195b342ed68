/**
 * Page contents for `--init` mixes (init.ts): which kind page n is, and the bytes of the kinds
 * that are neither zero nor random.
 *
 * - **dup**: a copy of one of DUP_POOL_PAGES "library" pages, chosen with a Zipf-like skew
 *   (entry k with probability ∝ log((k+2)/(k+1))), so a few contents appear at many addresses
 *   and most at a few, as shared libraries and the page cache give. The popular half of the pool
 *   is built from a fixed image seed, the same in every VM (the guest OS's own pages); the rest
 *   from the VM's seed.
 * - **text**: documents of log lines, JSON records or prose from a small vocabulary (deflate
 *   ≈ 3.4–3.7× per page).
 * - **code**: runs of x86-64-like instructions, arrays of structs whose pointers share their high
 *   bits, small-integer tables, pointer tables and zeroed gaps (deflate ≈ 2.3–2.7× per page).
 *
 * Each text or code page is four 1 KiB slices from one 16 KiB window of a 256 KiB corpus built
 * once per seed, at offsets drawn from hash(n), with the page's id stamped in its first 8 bytes:
 * no two pages are equal, page n depends only on (seed, n), and building a page is four memcpys,
 * not a generator run (1 GiB of `realistic` takes about as long as 1 GiB of `random`).
 */
import { PAGE_SIZE } from './guest-memory.ts';
import { below, deriveKey, hash32 } from './prng.ts';

/** The kinds of page an init mix is made of, in canonical order. */
export const PAGE_KINDS = ['zero', 'dup', 'text', 'code', 'random'] as const;
export type PageKind = (typeof PAGE_KINDS)[number];
/** Fraction of the pages of each kind; the fractions sum to 1. */
export type PageMix = { readonly [K in PageKind]: number };

/** Distinct contents dup pages are drawn from (2 MiB). */
export const DUP_POOL_PAGES = 512;
/** Seed of the pool's shared half: the "guest OS image" every VM has. */
const IMAGE_SEED = 0x5eed_1b;
const CORPUS_BYTES = 256 * 1024;
const SLICES = 4;
const SLICE_BYTES = PAGE_SIZE / SLICES;
const WINDOW_BYTES = 16 * 1024;
/** Ids stamped on pool pages: above any page number (16 GiB is 2^22 pages). */
const POOL_ID_BASE = 0x8000_0000;
/** Purpose tags for deriveKey (2 is the page-kind draw, shared with `mixed:<f>`'s zero test). */
const TAG_KIND = 2;
const TAG_SLICES = 3;
const TAG_DUP = 4;
const TAG_CORPUS = 5;

/**
 * The kind of each page of a mix, as an index into PAGE_KINDS: u = hash32(n ^ key) against
 * cumulative thresholds in PAGE_KINDS order. Zero comes first with the same draw as
 * `mixed:<f>`, so a mix of only zero and random pages is `mixed:<zero fraction>`. The last kind
 * with a non-zero fraction takes everything above the others (the fractions may sum to 1 ± 1e-9).
 */
export function pageKindTest(seed: number, mix: PageMix): (n: number) => number {
  const key = deriveKey(seed, TAG_KIND);
  const limits: number[] = [];
  let sum = 0;
  for (const kind of PAGE_KINDS) {
    sum += mix[kind];
    limits.push(sum * 2 ** 32);
  }
  const last = PAGE_KINDS.findLastIndex((kind) => mix[kind] > 0);
  for (let k = Math.max(last, 0); k < limits.length; k++) limits[k] = Infinity;
  const [z, d, t, c] = limits as [number, number, number, number];
  return (n) => {
    const u = hash32((n ^ key) | 0);
    return u < z ? 0 : u < d ? 1 : u < t ? 2 : u < c ? 3 : 4;
  };
}

/** Builds the dup, text and code pages of one seed. */
export class PageSynth {
  readonly #text: Buffer;
  readonly #code: Buffer;
  readonly #sliceKey: number;
  readonly #dupKey: number;
  #pool: Buffer | undefined;

  constructor(seed: number) {
    this.#text = textCorpus(seed);
    this.#code = codeCorpus(seed);
    this.#sliceKey = deriveKey(seed, TAG_SLICES);
    this.#dupKey = deriveKey(seed, TAG_DUP);
  }

  /** The pool dup pages copy, built on first use: the first half the image's, the rest this seed's. */
  #dupPool(): Buffer {
    if (this.#pool) return this.#pool;
    const pool = Buffer.alloc(DUP_POOL_PAGES * PAGE_SIZE);
    for (let i = 0; i < DUP_POOL_PAGES; i++) {
      const from = i < DUP_POOL_PAGES / 2 ? PageSynth.image() : this;
      const id = POOL_ID_BASE + i;
      if (hash32(id ^ from.#dupKey) % 5 < 3) from.code(pool, i * PAGE_SIZE, id);
      else from.text(pool, i * PAGE_SIZE, id);
    }
    this.#pool = pool;
    return pool;
  }

  static #image: PageSynth | undefined;
  static #last: PageSynth | undefined;
  static #lastSeed = -1;

  /** The synth of `seed`, reusing the last one built (a corpus and pool take a few ms). */
  static of(seed: number): PageSynth {
    if (PageSynth.#lastSeed !== seed || !PageSynth.#last) {
      PageSynth.#last = new PageSynth(seed);
      PageSynth.#lastSeed = seed;
    }
    return PageSynth.#last;
  }

  /** The synth of the image seed, whose pages form the shared half of every pool. */
  static image(): PageSynth {
    PageSynth.#image ??= new PageSynth(IMAGE_SEED);
    return PageSynth.#image;
  }

  /** Writes dup page n (a copy of a pool page) at target[offset]. */
  dup(target: Uint8Array, offset: number, n: number): void {
    const u = hash32((n ^ this.#dupKey) | 0) / 2 ** 32;
    const entry = Math.min(Math.floor((DUP_POOL_PAGES + 1) ** u) - 1, DUP_POOL_PAGES - 1);
    this.#dupPool().copy(target, offset, entry * PAGE_SIZE, (entry + 1) * PAGE_SIZE);
  }

  /** Writes text page `id` at target[offset]: four corpus slices, the id in hex first. */
  text(target: Uint8Array, offset: number, id: number): void {
    this.#slices(this.#text, 1, target, offset, id);
    for (let i = 0; i < 8; i++) target[offset + i] = HEX[(id >>> (28 - 4 * i)) & 15]!;
  }

  /** Writes code page `id` at target[offset]: four 16-byte-aligned corpus slices, then the id (LE) and a hash of it. */
  code(target: Uint8Array, offset: number, id: number): void {
    this.#slices(this.#code, 16, target, offset, id);
    const h = hash32(id ^ this.#sliceKey);
    for (let i = 0; i < 4; i++) {
      target[offset + i] = (id >>> (8 * i)) & 255;
      target[offset + 4 + i] = (h >>> (8 * i)) & 255;
    }
  }

  /** Four slices from one 16 KiB window of the corpus (one document, mostly), in order. */
  #slices(corpus: Buffer, align: number, target: Uint8Array, offset: number, id: number): void {
    const h = hash32((id ^ this.#sliceKey) | 0);
    const window = below(h, (CORPUS_BYTES - WINDOW_BYTES) / align) * align;
    const positions = (WINDOW_BYTES - SLICE_BYTES) / align;
    for (let s = 0; s < SLICES; s++) {
      const from = window + below(hash32(h + Math.imul(s + 1, 0x9e3779b9)), positions) * align;
      corpus.copy(target, offset + s * SLICE_BYTES, from, from + SLICE_BYTES);
    }
  }
}

const HEX = Buffer.from('0123456789abcdef', 'latin1');

/** A sequence of 32-bit draws from a key. */
class Draws {
  #i = 0;
  constructor(private readonly key: number) {}
  next(): number {
    return hash32((Math.imul(this.#i++, 0x9e3779b9) + this.key) | 0);
  }
  /** Uniform in [0, n). */
  below(n: number): number {
    return below(this.next(), n);
  }
  /** Skewed to small values: ≈ Zipf over [0, n). */
  zipf(n: number): number {
    return Math.min(Math.floor((n + 1) ** (this.next() / 2 ** 32)) - 1, n - 1);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.zipf(items.length)]!;
  }
}

// prettier-ignore
const WORDS = [
  'the', 'of', 'and', 'to', 'in', 'is', 'for', 'that', 'with', 'on', 'as', 'by', 'this', 'be', 'from', 'at', 'or',
  'an', 'are', 'not', 'it', 'which', 'request', 'user', 'server', 'data', 'file', 'time', 'value', 'error', 'new',
  'can', 'all', 'will', 'has', 'one', 'more', 'was', 'when', 'if', 'service', 'cache', 'index', 'page', 'memory',
  'connection', 'client', 'table', 'query', 'session', 'token', 'update', 'write', 'read', 'open', 'close', 'start',
  'stop', 'retry', 'timeout', 'limit', 'queue', 'worker', 'thread', 'process', 'event', 'message', 'node', 'cluster',
  'storage', 'disk', 'network', 'address', 'port', 'host', 'config', 'default', 'option', 'version', 'build', 'test',
  'order', 'account', 'payment', 'item', 'price', 'total', 'status', 'name', 'type', 'list', 'key', 'hash', 'block',
  'other', 'only', 'into', 'over', 'after', 'before', 'first', 'last', 'system', 'state', 'change', 'record', 'field',
];
// prettier-ignore
const MESSAGES = [
  'GET /api/v1/$w/$n 200', 'GET /api/v1/$w 200', 'POST /api/v1/$w 201', 'GET /static/$w.js 304',
  'connection from 10.0.$n.$n closed', 'cache miss for $w:$n', 'query on $w returned $n rows',
  'worker $n finished $w in $nms', 'retrying $w after timeout ($n attempts)', 'session $n expired',
  'flushed $n pages to disk', 'GET /api/v1/$w/$n 404', 'user $n logged in', 'checkpoint complete: wrote $n buffers',
  'rate limit reached for $w', 'slow query on $w: $nms', 'scheduled $w job $n', 'heartbeat ok',
];
const LEVELS = ['INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'];
const TYPES = ['user', 'order', 'item', 'event', 'session'];
const COMPONENTS = ['http', 'db', 'scheduler', 'auth', 'cache', 'kernel', 'systemd', 'nginx', 'app', 'gc'];

/** 256 KiB of log lines, JSON records and prose. */
function textCorpus(seed: number): Buffer {
  const r = new Draws(deriveKey(seed, TAG_CORPUS));
  const words = (count: number): string => {
    let s = r.pick(WORDS);
    for (let i = 1; i < count; i++) s += ` ${r.pick(WORDS)}`;
    return s;
  };
  const two = (v: number): string => String(v).padStart(2, '0');
  const message = (): string =>
    r
      .pick(MESSAGES)
      .replace(/\$w/g, () => r.pick(WORDS))
      .replace(/\$n/g, () => String(r.zipf(10_000)));
  const parts: string[] = [];
  let length = 0;
  let clock = r.below(86_400);
  let record = r.below(100_000);
  const requests = [r.next(), r.next(), r.next(), r.next()];
  let kind = 0;
  let documentEnd = 0;
  while (length < CORPUS_BYTES) {
    // Documents of one kind (a log file, a JSON response, an article), 8–24 KiB each.
    if (length >= documentEnd) {
      kind = r.below(20);
      documentEnd = length + 8192 + r.below(16_384);
    }
    let line: string;
    clock += r.below(4);
    const time = `${two(((clock / 3600) % 24) | 0)}:${two(((clock / 60) % 60) | 0)}:${two(clock % 60)}`;
    if (kind < 9) {
      // A request id recurs over a few lines, as a request's log lines do.
      if (r.below(3) === 0) requests[r.below(4)] = r.next();
      line =
        `2024-05-${two(1 + (((clock / 86_400) % 28) | 0))}T${time}.${String(r.below(1000)).padStart(3, '0')}Z ` +
        `${r.pick(LEVELS)} ${r.pick(COMPONENTS)}[${1000 + r.zipf(64)}]: ${message()}` +
        ` req=${requests[r.zipf(4)]!.toString(16).padStart(8, '0')} took=${r.zipf(2000)}ms\n`;
    } else if (kind < 16) {
      record += 1 + r.zipf(8);
      line =
        `{"id":${record},"name":"${r.pick(WORDS)} ${r.pick(WORDS)}","type":"${r.pick(TYPES)}",` +
        `"active":${r.below(4) > 0},"count":${r.zipf(500)},"score":${r.zipf(100)}.${r.below(2) * 5}0,` +
        `"tags":["${r.pick(WORDS)}","${r.pick(WORDS)}"],"updated":"2024-05-${two(1 + r.below(28))}T${time}Z"}\n`;
    } else {
      const sentence = words(8 + r.below(14));
      line = `${sentence[0]!.toUpperCase()}${sentence.slice(1)}.${r.below(3) === 0 ? '\n' : ' '}`;
    }
    parts.push(line);
    length += line.length;
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, CORPUS_BYTES);
}

/**
 * x86-64-ish instruction templates: opcode bytes, then the operand: 0 none, 1 a stack-slot
 * displacement (disp8), 2 a short branch (rel8), 4 a call or load target (rel32).
 */
// prettier-ignore
const INSTRUCTIONS: readonly (readonly [readonly number[], 0 | 1 | 2 | 4])[] = [
  [[0x55], 0], [[0x48, 0x89, 0xe5], 0], [[0x48, 0x83, 0xec], 1], [[0x48, 0x8b, 0x45], 1], [[0x48, 0x89, 0x45], 1],
  [[0x8b, 0x45], 1], [[0x89, 0x45], 1], [[0x48, 0x8b, 0x7d], 1], [[0xe8], 4], [[0x85, 0xc0], 0], [[0x74], 2],
  [[0x75], 2], [[0xeb], 2], [[0x0f, 0x84], 4], [[0x48, 0x8d, 0x05], 4], [[0xb8], 1], [[0x31, 0xc0], 0],
  [[0x48, 0x83, 0xc4], 1], [[0x5d], 0], [[0xc3], 0], [[0x48, 0x89, 0xc7], 0], [[0x48, 0x8b, 0x43], 1],
  [[0x41, 0x54], 0], [[0x41, 0x5c], 0], [[0x0f, 0x1f, 0x44, 0x00, 0x00], 0], [[0xcc], 0], [[0x48, 0x39, 0xc2], 0],
];
const STACK_SLOTS = [0xf8, 0xf0, 0xe8, 0xe0, 0xd8, 0x08, 0x10, 0x18, 0x20, 0x28];

/** 256 KiB of instruction runs, struct arrays, small-integer tables and pointer tables. */
function codeCorpus(seed: number): Buffer {
  const r = new Draws(deriveKey(seed, TAG_CORPUS + 1));
  const out = Buffer.alloc(CORPUS_BYTES);
  const view = new DataView(out.buffer, out.byteOffset, out.length);
  // Heap pointers share their high 32 bits and move forward through an arena, as allocations do.
  const heapHigh = 0x7f00 + r.below(256);
  let heap = r.next() & 0xfff0_0000;
  const codeHigh = 0x5555 + r.below(16);
  const codeLow = r.next() & 0xffc0_0000;
  const callees = Array.from({ length: 24 }, () => r.below(1 << 20));
  const types = [1, 2, 3, 4, 7, 9].map((t) => t + r.below(4) * 16);
  let at = 0;
  const u32 = (v: number): void => {
    view.setUint32(at, v >>> 0, true);
    at += 4;
  };
  const u64 = (high: number, low: number): void => {
    u32(low);
    u32(high);
  };
  while (at < CORPUS_BYTES) {
    // Runs of one kind, 1–4 KiB each (a zeroed run shorter).
    const kind = r.below(20);
    const end = Math.min(CORPUS_BYTES, at + (kind === 15 ? 64 + r.below(448) : 1024 + r.below(3072)));
    if (kind < 6) {
      // Instruction run: calls go to a few functions, loads and stores to a few stack slots.
      while (at < end) {
        const [bytes, operand] = r.pick(INSTRUCTIONS);
        if (at + bytes.length + operand > end) break;
        for (const b of bytes) out[at++] = b;
        if (operand === 1) out[at++] = r.pick(STACK_SLOTS);
        else if (operand === 2) out[at++] = 2 + r.zipf(64);
        else if (operand === 4) u32(r.pick(callees) - at);
      }
      while (at < end) out[at++] = 0xcc;
    } else if (kind < 15) {
      // Array of 48-byte structs: next pointer, length, type and flags, parent or null, counter,
      // a field still zero, a reference count.
      at = Math.min(end, (at + 15) & ~15);
      while (at + 48 <= end) {
        heap += 48 * (1 + r.zipf(4));
        u64(heapHigh, heap);
        u32(r.zipf(256));
        u32(r.pick(types) | (r.zipf(4) << 16));
        if (r.below(3) > 0) u64(heapHigh, heap - 48 * r.zipf(256));
        else u64(0, 0);
        u64(0, r.zipf(4096));
        u64(0, 0);
        u64(0, 1 + r.zipf(3));
      }
      at = end;
    } else if (kind === 15) {
      // Zeroed space: padding, a buffer's unused tail.
      at = end;
    } else if (kind < 18) {
      // Sorted offsets with small gaps.
      let v = r.below(4096);
      while (at + 4 <= end) u32((v += 1 + r.zipf(64)));
      at = end;
    } else {
      // Pointer table (vtables, GOT): entries near each other in the code segment.
      at = Math.min(end, (at + 7) & ~7);
      let fn = codeLow + r.below(1 << 20);
      while (at + 8 <= end) u64(codeHigh, (fn += 16 * (1 + r.zipf(256))));
      at = end;
    }
  }
  return out;
}
