// xxhash64 (seed 0) of many 4 KiB pages in one WebAssembly call: the memory digest's page hash
// (digest-pages.mjs), computed without a JavaScript → WebAssembly round trip, an input copy
// through a generic update() and a result allocation per page (hash-wasm's per-call costs).
// The value is XXH64 exactly — checked against hash-wasm's createXXHash64 by
// test/unit/shared/vm/xxhash64-pages.test.ts — in its canonical 8-byte (big-endian) form.
//
// The module is a few hundred bytes, assembled here from its instructions (no toolchain, no
// binary file in the tree): one exported memory holding BATCH_PAGES input pages then their
// hashes, and one function hash(count) that hashes pages 0..count−1 of the input area into the
// output area. Every input is exactly one 4 KiB page, a multiple of XXH64's 32-byte stripe, so
// the function is XXH64's stripe loop, the lanes' merge, the length and the avalanche — no tail.
//
// Plain JavaScript, so the channel workers and the digest worker load it without a loader.

/** Bytes of one page (the only input length this hasher takes). */
export const PAGE_BYTES = 4096;
/** Pages one call hashes at most. */
export const BATCH_PAGES = 256;
/** Bytes of one page hash. */
export const HASH_BYTES = 8;

const INPUT_BYTES = BATCH_PAGES * PAGE_BYTES;
const OUTPUT_AT = INPUT_BYTES;
const WASM_PAGE = 65536;

const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const U64 = 1n << 64n;

/** Unsigned LEB128. */
function uleb(value) {
  const out = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

/** Signed LEB128 of a 64-bit value given as an unsigned or signed BigInt (i64.const's immediate). */
function sleb64(value) {
  let v = BigInt.asIntN(64, value);
  const out = [];
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const op = {
  block: 0x02,
  loop: 0x03,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  get: 0x20,
  set: 0x21,
  tee: 0x22,
  i64Load: 0x29,
  i64Store8: 0x3c,
  i32Const: 0x41,
  i64Const: 0x42,
  i32LtU: 0x49,
  i32GeU: 0x4f,
  i32Add: 0x6a,
  i32Shl: 0x74,
  i64Add: 0x7c,
  i64Mul: 0x7e,
  i64Xor: 0x85,
  i64ShrU: 0x88,
  i64Rotl: 0x89,
};
const VOID = 0x40;
// Locals: the parameter, then four i32s, then five i64s.
const COUNT = 0;
const I = 1;
const P = 2;
const END = 3;
const OUT = 4;
const V = [5, 6, 7, 8];
const H = 9;

const get = (local) => [op.get, local];
const set = (local) => [op.set, local];
const i64 = (value) => [op.i64Const, ...sleb64(value)];
const i32 = (value) => [op.i32Const, ...sleb64(BigInt(value))];

/** acc = rotl(acc + input × P2, 31) × P1, input the 8 bytes at p + offset. */
const round = (acc, offset) => [
  ...get(acc),
  ...get(P),
  op.i64Load,
  3,
  ...uleb(offset),
  ...i64(P2),
  op.i64Mul,
  op.i64Add,
  ...i64(31n),
  op.i64Rotl,
  ...i64(P1),
  op.i64Mul,
  ...set(acc),
];

/** h = (h ^ round(0, v)) × P1 + P4. */
const merge = (v) => [
  ...get(H),
  ...get(v),
  ...i64(P2),
  op.i64Mul,
  ...i64(31n),
  op.i64Rotl,
  ...i64(P1),
  op.i64Mul,
  op.i64Xor,
  ...i64(P1),
  op.i64Mul,
  ...i64(P4),
  op.i64Add,
  ...set(H),
];

/** h ^= h >> shift, then × prime (none: the last step). */
const avalanche = (shift, prime) => [
  ...get(H),
  ...get(H),
  ...i64(BigInt(shift)),
  op.i64ShrU,
  op.i64Xor,
  ...(prime === undefined ? [] : [...i64(prime), op.i64Mul]),
  ...set(H),
];

const body = [
  op.block,
  VOID,
  op.loop,
  VOID,
  // while (i < count)
  ...get(I),
  ...get(COUNT),
  op.i32GeU,
  op.brIf,
  1,
  // p = i × 4096, end = p + 4096
  ...get(I),
  ...i32(12),
  op.i32Shl,
  op.tee,
  P,
  ...i32(PAGE_BYTES),
  op.i32Add,
  ...set(END),
  // The four lanes, seed 0.
  ...i64((P1 + P2) % U64),
  ...set(V[0]),
  ...i64(P2),
  ...set(V[1]),
  ...i64(0n),
  ...set(V[2]),
  ...i64(U64 - P1),
  ...set(V[3]),
  op.loop,
  VOID,
  ...round(V[0], 0),
  ...round(V[1], 8),
  ...round(V[2], 16),
  ...round(V[3], 24),
  ...get(P),
  ...i32(32),
  op.i32Add,
  op.tee,
  P,
  ...get(END),
  op.i32LtU,
  op.brIf,
  0,
  op.end,
  // h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)
  ...get(V[0]),
  ...i64(1n),
  op.i64Rotl,
  ...get(V[1]),
  ...i64(7n),
  op.i64Rotl,
  op.i64Add,
  ...get(V[2]),
  ...i64(12n),
  op.i64Rotl,
  op.i64Add,
  ...get(V[3]),
  ...i64(18n),
  op.i64Rotl,
  op.i64Add,
  ...set(H),
  ...merge(V[0]),
  ...merge(V[1]),
  ...merge(V[2]),
  ...merge(V[3]),
  // h += length
  ...get(H),
  ...i64(BigInt(PAGE_BYTES)),
  op.i64Add,
  ...set(H),
  ...avalanche(33, P2),
  ...avalanche(29, P3),
  ...avalanche(32),
  // Big-endian at OUTPUT_AT + i × 8 (the canonical form), one byte at a time.
  ...get(I),
  ...i32(3),
  op.i32Shl,
  ...i32(OUTPUT_AT),
  op.i32Add,
  ...set(OUT),
  ...Array.from({ length: 8 }, (_, k) => [
    ...get(OUT),
    ...get(H),
    ...i64(BigInt(56 - 8 * k)),
    op.i64ShrU,
    op.i64Store8,
    0,
    ...uleb(k),
  ]).flat(),
  // i += 1, next page
  ...get(I),
  ...i32(1),
  op.i32Add,
  ...set(I),
  op.br,
  0,
  op.end,
  op.end,
  op.end,
];

function section(id, content) {
  return [id, ...uleb(content.length), ...content];
}

function name(text) {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

const locals = [0x02, 0x04, 0x7f, 0x05, 0x7e];
const code = [...locals, ...body];
const memoryPages = Math.ceil((INPUT_BYTES + BATCH_PAGES * HASH_BYTES) / WASM_PAGE);
const wasm = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00,
  ...section(1, [0x01, 0x60, 0x01, 0x7f, 0x00]),
  ...section(3, [0x01, 0x00]),
  ...section(5, [0x01, 0x00, ...uleb(memoryPages)]),
  ...section(7, [0x02, ...name('memory'), 0x02, 0x00, ...name('hash'), 0x00, 0x00]),
  ...section(10, [0x01, ...uleb(code.length), ...code]),
]);
const module = new WebAssembly.Module(wasm);

/**
 * A hasher of pages, each its own instance (one per thread that hashes): `hashPages(count, page,
 * into)` hashes pages 0..count−1, page i's bytes read through `page(i)` (PAGE_BYTES of them),
 * in calls of up to BATCH_PAGES, and hands `into(i, hashes, at)` each page's 8-byte hash at
 * `hashes[at..at+8]` (a view that the next call overwrites: copy what you keep).
 */
export function createPageHasher() {
  const instance = new WebAssembly.Instance(module);
  const memory = new Uint8Array(instance.exports.memory.buffer);
  const hash = instance.exports.hash;
  return {
    hashPages(count, page, into) {
      for (let from = 0; from < count; from += BATCH_PAGES) {
        const n = Math.min(BATCH_PAGES, count - from);
        for (let i = 0; i < n; i++) {
          const bytes = page(from + i);
          if (bytes.length !== PAGE_BYTES) throw new RangeError(`a page is ${PAGE_BYTES} bytes, got ${bytes.length}`);
          memory.set(bytes, i * PAGE_BYTES);
        }
        hash(n);
        for (let i = 0; i < n; i++) into(from + i, memory, OUTPUT_AT + i * HASH_BYTES);
      }
    },
    /** One page's hash (a new 8-byte array). */
    hashPage(bytes) {
      let out;
      this.hashPages(
        1,
        () => bytes,
        (_i, hashes, at) => (out = hashes.slice(at, at + HASH_BYTES)),
      );
      return out;
    },
  };
}
