/**
 * The dirty log: one bit per guest page in a shared Int32Array, written by exactly ONE vCPU
 * (single writer per bitmap; a second vCPU would need its own log or atomics, see
 * PERFORMANCE.md) and harvested by the host.
 *
 * Flow and the ordering that makes it lossless:
 *   vCPU:    store the data → mark the page (plain `words[p >>> 5] |= 1 << (p & 31)`, no Atomics:
 *            Atomics.or per store is ~7× slower)
 *   harvest: Atomics.exchange(word, 0) for each non-zero word → report its pages → the caller
 *            then reads those pages.
 * A store racing a harvest is therefore reported by this harvest or the next, never by neither:
 * if the mark lands before the exchange, this harvest reports it and the page is read after the
 * data is there; if after, the bit survives to the next harvest. (Marking BEFORE storing could
 * lose the update forever.) The vCPU's plain read-modify-write of a word can re-set bits that a
 * concurrent exchange just cleared: those pages are reported twice, which costs a resend but
 * never loses one. Zero words are skipped with a plain read (a racing mark is then simply left
 * for the next harvest).
 *
 * Nothing here is about memory: the bits are guest pages for the vCPU's log and the NIC's DMA
 * log, and 4 KiB disk blocks for the virtual disk's (disk/image.ts, which marks after each write
 * is in the file). "Page" below reads "block" there; the single-writer rule is the same.
 */
import { countBits, popcount32, type Bitmap } from './bitmap.ts';

/** Marks page p dirty in `words` (the vCPU's store path; workloads inline the same expression). */
export function markDirty(words: Int32Array, p: number): void {
  words[p >>> 5]! |= 1 << (p & 31);
}

/** The shared dirty bitmap and its harvester. */
export class DirtyLog {
  /** Pages covered. */
  readonly pageCount: number;
  /** The shared buffer (pass to the vCPU worker). */
  readonly buffer: SharedArrayBuffer;
  /** The live words (bit p in word p >>> 5). */
  readonly words: Int32Array;
  #hitIndex: Int32Array | undefined;
  #hitWord: Int32Array | undefined;

  /** A clean log for `pageCount` pages, or a view of an existing shared one. */
  constructor(pageCount: number, buffer?: SharedArrayBuffer) {
    this.pageCount = pageCount;
    this.buffer = buffer ?? new SharedArrayBuffer(Math.ceil(pageCount / 32) * 4);
    this.words = new Int32Array(this.buffer);
  }

  /**
   * The pages dirtied since the previous harvest, ascending, and clears them (fetch-and-clear
   * per 32-bit word). If `into` is given, the harvested words are also OR-ed into it (the VM's
   * ever-dirty map).
   */
  harvest(into?: Bitmap): Uint32Array {
    const w = this.words;
    const n = w.length;
    const hitIndex = (this.#hitIndex ??= new Int32Array(n));
    const hitWord = (this.#hitWord ??= new Int32Array(n));
    let hits = 0;
    let total = 0;
    for (let i = 0; i < n; i++) {
      if (w[i] !== 0) {
        const v = Atomics.exchange(w, i, 0);
        if (v !== 0) {
          hitIndex[hits] = i;
          hitWord[hits] = v;
          hits += 1;
          total += popcount32(v);
        }
      }
    }
    const pages = new Uint32Array(total);
    let k = 0;
    const ever = into?.words;
    for (let h = 0; h < hits; h++) {
      const i = hitIndex[h]!;
      let v = hitWord[h]!;
      if (ever) ever[i]! |= v;
      const base = i << 5;
      while (v !== 0) {
        const lowest = v & -v;
        pages[k++] = base + 31 - Math.clz32(lowest);
        v ^= lowest;
      }
    }
    return pages;
  }

  /** ORs the currently dirty words into `into` without clearing them (plain reads). */
  peekInto(into: Bitmap): void {
    into.orWords(this.words);
  }

  /** Number of currently dirty pages (plain reads, not cleared). */
  get pendingCount(): number {
    return countBits(this.words);
  }

  /** Clears the whole log (e.g. when the VM's memory is replaced wholesale). */
  clear(): void {
    for (let i = 0; i < this.words.length; i++) Atomics.store(this.words, i, 0);
  }
}
