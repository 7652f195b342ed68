/**
 * A plain bitmap over a Uint32Array, one bit per page: the host-side set type of the toy VM
 * (pages possibly non-zero, pages to send, …). Bit n lives in word n >>> 5 at bit n & 31, the
 * same layout as the shared dirty log and presence map, so their words can be OR-ed in
 * directly. Not thread-safe: concurrent writers must use DirtyLog / PresenceMap instead.
 * bytes()/fromBytes() use host byte order (little-endian on every platform Node supports here).
 */
import { MigrationError } from '../errors.ts';

/** Number of set bits in a 32-bit word (SWAR popcount). */
export function popcount32(word: number): number {
  let v = word - ((word >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** Number of set bits in a word array (skipping zero words). */
export function countBits(words: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < words.length; i++) {
    const v = words[i]!;
    if (v !== 0) total += popcount32(v);
  }
  return total;
}

/** Calls `visit(bitIndex)` for each set bit of `word`, lowest first, offset by `base`. */
export function forEachBitInWord(word: number, base: number, visit: (n: number) => void): void {
  let w = word | 0;
  while (w !== 0) {
    const lowest = w & -w;
    visit(base + 31 - Math.clz32(lowest));
    w ^= lowest;
  }
}

/** The read side of a bitmap: what callers that must not change it get. */
export interface ReadonlyBitmap {
  /** Number of bits (pages) the bitmap covers. */
  readonly size: number;
  /** Number of set bits. O(size / 32): computed on each read. */
  readonly count: number;
  /** The backing words (bit n in word n >>> 5). Treat as read-only. */
  readonly words: Uint32Array;
  /** True if bit n is set. */
  has(n: number): boolean;
  /** Index of the first set bit ≥ from, or -1. Skips zero words, so scanning sparse maps is cheap. */
  nextSet(from: number): number;
  /** Calls visit(n) for every set bit, ascending. */
  forEach(visit: (n: number) => void): void;
  /** The set bits, ascending, as a fresh page list. */
  toPageList(): Uint32Array;
  /** The words as little-endian bytes (a copy), e.g. to send; Bitmap.fromBytes() reads them back. */
  bytes(): Uint8Array;
  /** An independent copy. */
  clone(): Bitmap;
}

/** A fixed-size bitmap. */
export class Bitmap implements ReadonlyBitmap {
  readonly size: number;
  readonly words: Uint32Array;

  /** A bitmap of `size` bits, all clear (or over `words`, which must hold ⌈size/32⌉ words). */
  constructor(size: number, words?: Uint32Array) {
    this.size = size;
    this.words = words ?? new Uint32Array(Math.ceil(size / 32));
  }

  get count(): number {
    return countBits(this.words);
  }

  has(n: number): boolean {
    return ((this.words[n >>> 5]! >>> (n & 31)) & 1) === 1;
  }

  /** Sets bit n. */
  set(n: number): void {
    this.words[n >>> 5]! |= 1 << (n & 31);
  }

  /** Clears bit n. */
  clear(n: number): void {
    this.words[n >>> 5]! &= ~(1 << (n & 31));
  }

  /** Sets every bit in [0, size). */
  setAll(): void {
    this.words.fill(0xffffffff);
    const tail = this.size & 31;
    if (tail !== 0) this.words[this.words.length - 1] = (1 << tail) - 1;
  }

  /** Clears every bit. */
  clearAll(): void {
    this.words.fill(0);
  }

  /** this |= words (same layout; e.g. a harvested dirty word array). */
  orWords(words: ArrayLike<number>): void {
    const w = this.words;
    for (let i = 0; i < w.length; i++) {
      const v = words[i]!;
      if (v !== 0) w[i]! |= v;
    }
  }

  nextSet(from: number): number {
    if (from >= this.size) return -1;
    const w = this.words;
    let i = from >>> 5;
    let word = w[i]! & (0xffffffff << (from & 31));
    while (word === 0) {
      i += 1;
      if (i >= w.length) return -1;
      word = w[i]!;
    }
    const n = (i << 5) + 31 - Math.clz32(word & -word);
    return n < this.size ? n : -1;
  }

  forEach(visit: (n: number) => void): void {
    const w = this.words;
    for (let i = 0; i < w.length; i++) {
      const v = w[i]!;
      if (v !== 0) forEachBitInWord(v, i << 5, visit);
    }
  }

  /** A bitmap of `size` bits from bytes(); throws ERR_INVALID_ARGUMENT if the length does not match. */
  static fromBytes(bytes: Uint8Array, size: number): Bitmap {
    const words = new Uint32Array(Math.ceil(size / 32));
    if (bytes.length !== words.byteLength) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `a bitmap of ${size} bits is ${words.byteLength} bytes, got ${bytes.length}`,
      );
    }
    new Uint8Array(words.buffer).set(bytes);
    const tail = size & 31;
    if (tail !== 0) words[words.length - 1]! &= (1 << tail) - 1;
    return new Bitmap(size, words);
  }

  bytes(): Uint8Array {
    return new Uint8Array(this.words.slice().buffer);
  }

  toPageList(): Uint32Array {
    const out = new Uint32Array(this.count);
    let k = 0;
    this.forEach((n) => {
      out[k++] = n;
    });
    return out;
  }

  clone(): Bitmap {
    return new Bitmap(this.size, this.words.slice());
  }
}
