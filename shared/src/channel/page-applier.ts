/**
 * The destination's PageSink: Pages bytes go from the socket straight into guest memory, and
 * every completed page updates the PageDigestLedger, so the digest to compare with the source's
 * is ready the moment StopCopyEnd arrives — no rehash of all memory inside the downtime. Zero
 * records clear the page (it may hold an older version).
 *
 * Two ways in, both ending in guest memory:
 * - `pageTarget` (pre-copy): the FramedSocket lets the kernel read a run of consecutive pages
 *   straight into guest memory — no user-space copy at all;
 * - `pageBytes`: bytes that arrived in the socket's scratch buffer (short runs, the frame's first
 *   bytes) are copied once, a whole run of consecutive pages per call (`maxRunPages`).
 * With an `onPage` hook (post-copy marks presence there, and the guest may be running on this
 * memory) pages are never read in place: they are copied in pageBytes as before.
 *
 * Encoded pages (issue 17; page-encodings.ts) are applied at the batch's end, in batch order,
 * each only if its capability was negotiated (`encodings`): a Compressed page from the batch's
 * block, inflated once and bounded to its pages; a Delta decoded in place onto this side's copy
 * and a Dedup copied from another page — both only while the VM is not running here (`wanted`
 * unset), and only onto/from a page this applier has received: the source's cache and index
 * model what the destination holds, and a reference outside that model is refused, not guessed.
 * A reference at or past the VM's page count (`dedup-host`) names entry (ref − pageCount) of
 * `hostContent`, the table of other VMs' content this side snapshotted and offered at Setup; an
 * entry it did not offer is refused the same way.
 */
import { COMPRESSION_CODECS, decompressSync, xbzrleDecode, type HostContentTable } from '../codec/index.ts';
import { MigrationError } from '../errors.ts';
import { PageKind, type PageSink, type PagesMeta } from '../protocol/index.ts';
import { PageDigestLedger, type GuestMemory } from '../vm/index.ts';

export class PageApplier implements PageSink {
  #memory: GuestMemory | undefined;
  #ledger: PageDigestLedger | undefined;
  #current: PagesMeta | undefined;
  /** The memory's regions as byte views, and log2(pages per region). */
  #regions: Uint8Array[] = [];
  #regionShift = 0;
  #pageMask = 0;
  #pageShift = 12;
  /** Pages received (raw + zero), for stats. */
  pagesReceived = 0;
  /** Of those, pages that came with their bytes (the migration record's page payload). */
  rawPagesReceived = 0;
  /**
   * Post-copy: whether a page may still be written (it is absent). A page the guest already has
   * must never be overwritten by a late copy — the guest may have written it since — so such
   * bytes are dropped. Undefined = every page may be written (pre-copy: the VM is not running).
   */
  wanted: ((page: number) => boolean) | undefined;
  /** Called after each page is complete (post-copy marks presence here). */
  onPage: ((page: number) => void) | undefined;
  /** The page encodings the handshake negotiated (capabilities xbzrle, dedup, compress); none by default. */
  encodings: { delta: boolean; dedup: boolean; compress: boolean } = { delta: false, dedup: false, compress: false };
  /**
   * The host content this side offered in SetupDone (`dedup-host`): what a reference at or past
   * the page count copies. Undefined: none offered (or no longer needed: dropped to free it).
   */
  hostContent: HostContentTable | undefined;
  /** Post-copy: the start of the page a read cut off (see pageBytes). */
  #partial: Uint8Array | undefined;
  /** Pages received at least once since attach (a Delta's base, a Dedup's source), 1 byte each. */
  #received: Uint8Array = new Uint8Array(0);
  /**
   * Pages that arrived by another way than this connection — parallel bulk channels (multifd),
   * whose workers write guest memory themselves — count as received for a delta's base and a
   * reference's source. @default none
   */
  receivedElsewhere: ((page: number) => boolean) | undefined;
  /** References applied to host content (for the logs: the source reports its own count). */
  hostReferences = 0;

  /**
   * Start writing into this memory; the ledger starts as all-zero (the memory is fresh). When the
   * memory is released (the VM was destroyed, e.g. a discarded incoming VM) this applier lets go
   * of its views at once: they would otherwise keep the memory alive past the one GC that
   * destroy() asks for, as long as the connection's objects live (reclaim.ts).
   */
  attach(memory: GuestMemory, ledger: PageDigestLedger = new PageDigestLedger(memory.pageCount)): void {
    this.#memory = memory;
    this.#ledger = ledger;
    this.#regions = memory.regions.map((_, i) => memory.region(i));
    this.#regionShift = memory.regionPageShift;
    this.#pageMask = (1 << memory.regionPageShift) - 1;
    this.#pageShift = Math.log2(memory.pageSize);
    this.#received = new Uint8Array(memory.pageCount);
    memory.onRelease(() => {
      if (this.#memory !== memory) return;
      this.#memory = undefined;
      this.#regions = [];
      this.#current = undefined;
      this.#received = new Uint8Array(0);
      this.hostContent = undefined;
    });
  }

  /** A run of consecutive pages never crosses a region (the decoder cuts runs at multiples of this). */
  get maxRunPages(): number {
    return this.#memory ? 1 << this.#regionShift : 1;
  }

  /** The page hashes of what arrived; a second connection's applier shares it (post-copy fault channel). */
  get ledger(): PageDigestLedger | undefined {
    return this.#ledger;
  }

  /** The digest of memory as received (same definition as ToyVm.digest()). */
  digest(): string {
    if (!this.#ledger) throw new MigrationError('ERR_UNEXPECTED_MESSAGE', 'no Setup yet');
    return this.#ledger.digest();
  }

  pagesBegin(meta: PagesMeta): void {
    if (!this.#memory) throw new MigrationError('ERR_UNEXPECTED_MESSAGE', 'Pages before Setup');
    this.#current = meta;
  }

  /** `bytes` start `offset` bytes into page `pages[index]` and may run on into the following pages. */
  pageBytes(index: number, offset: number, bytes: Uint8Array): void {
    if (this.wanted === undefined) {
      this.#target(index, offset, bytes.length).set(bytes);
      return;
    }
    // Page by page, so that a page already present is skipped. A page is claimed (wanted) only
    // once all its bytes are here: the part of a page that a read cut off waits in #partial, so a
    // claim never spans two reads — the other writer (the fault thread) would otherwise drop its
    // copy and wait for this connection's next read, which a busy event loop may make late.
    const pageSize = 1 << this.#pageShift;
    for (let done = 0; done < bytes.length;) {
      const length = Math.min(pageSize - offset, bytes.length - done);
      const part = bytes.subarray(done, done + length);
      if (offset + length < pageSize) {
        this.#partial ??= new Uint8Array(pageSize);
        this.#partial.set(part, offset); // the page's start (its end comes with the next read)
      } else {
        const page = this.#current!.pages[index]!;
        if (this.wanted(page)) {
          const target = this.#target(index, 0, pageSize);
          if (offset > 0) target.set(this.#partial!.subarray(0, offset));
          target.set(part, offset);
          // Installed now, not at the batch's end (up to a megabyte later, over several turns of a
          // busy event loop): a fault on it waits for nothing else.
          this.#installRaw(page);
        }
      }
      done += length;
      index += 1;
      offset = 0;
    }
  }

  /** A raw page's bytes are all in (post-copy, under this applier's claim): hash it, then let the guest have it. */
  #installRaw(page: number): void {
    const memory = this.#memory ?? released();
    this.#ledger!.update(page, memory.page(page));
    memory.markTouched(page);
    this.#received[page] = 1;
    this.onPage?.(page);
  }

  pageTarget(index: number, offset: number, length: number): Uint8Array | undefined {
    if (this.onPage !== undefined || this.wanted !== undefined) return undefined;
    return this.#target(index, offset, length);
  }

  pagesEnd(meta: PagesMeta, encoded?: Uint8Array): void {
    const memory = this.#memory ?? released();
    const ledger = this.#ledger!;
    const { pages, kinds } = meta;
    const decoder = new EncodedPages(meta, encoded, memory.pageSize);
    for (let i = 0; i < pages.length; i++) {
      const page = pages[i]!;
      const kind = kinds[i]!;
      if (kind === PageKind.Raw) this.rawPagesReceived += 1;
      if (kind > PageKind.Zero) this.#checkEncoding(kind, page);
      // A skipped page still steps over its encoded part, so the cursors stay in step. (A raw page
      // installed as its last byte came is present now, so no longer wanted: skipped here.)
      if (this.wanted !== undefined && !this.wanted(page)) {
        decoder.skip(kind);
        continue;
      }
      if (kind === PageKind.Raw) {
        ledger.update(page, memory.page(page));
        // The bytes went in through region views, not writePage(): record that this page may be
        // non-zero, or a VM that arrived here would skip it as known-zero when it leaves again.
        memory.markTouched(page);
      } else if (kind === PageKind.Zero) {
        // Reading a never-written page does not allocate it; writing would (PERFORMANCE.md).
        if (!memory.isZeroPage(page)) memory.page(page).fill(0);
        ledger.updateZero(page);
      } else {
        const target = memory.page(page);
        if (kind === PageKind.Delta) {
          xbzrleDecode(decoder.nextDelta(), target);
        } else if (kind === PageKind.Dedup) {
          target.set(this.#referenced(page, decoder.nextRef(), memory));
        } else {
          target.set(decoder.nextCompressed());
        }
        ledger.update(page, target);
        memory.markTouched(page);
      }
      this.#received[page] = 1;
      this.onPage?.(page);
    }
    this.pagesReceived += pages.length;
    this.#current = undefined;
  }

  /** An encoded page: its capability negotiated, and a Delta or Dedup only onto what this side holds, not running. */
  #checkEncoding(kind: number, page: number): void {
    const e = this.encodings;
    const allowed = kind === PageKind.Delta ? e.delta : kind === PageKind.Dedup ? e.dedup : e.compress;
    if (!allowed) {
      throw new MigrationError('ERR_BAD_METADATA', `Pages: page kind ${kind} was not negotiated`);
    }
    if (kind === PageKind.Compressed) return;
    if (this.wanted !== undefined) {
      throw new MigrationError(
        'ERR_BAD_ENCODING',
        `page ${page}: a ${kind === PageKind.Delta ? 'delta' : 'dedup reference'} while the VM runs here (post-copy)`,
      );
    }
    if (kind === PageKind.Delta && !this.#arrived(page)) {
      throw new MigrationError('ERR_BAD_ENCODING', `page ${page}: a delta against a page that never arrived here`);
    }
  }

  /** Page n arrived here: on this connection, or (receivedElsewhere) over a parallel bulk channel. */
  #arrived(page: number): boolean {
    return this.#received[page] === 1 || this.receivedElsewhere?.(page) === true;
  }

  /** The bytes a reference from `page` copies: a page received here, or an entry of the host content offered. */
  #referenced(page: number, from: number, memory: GuestMemory): Uint8Array {
    if (from < memory.pageCount) {
      if (!this.#arrived(from)) {
        throw new MigrationError('ERR_BAD_ENCODING', `page ${page} refers to page ${from}, which never arrived here`);
      }
      return memory.page(from);
    }
    const k = from - memory.pageCount;
    const entry = this.hostContent?.entry(k);
    if (entry === undefined) {
      throw new MigrationError(
        'ERR_BAD_ENCODING',
        `page ${page} refers to host content ${k}, which this side did not offer (${this.hostContent?.count ?? 0} entries)`,
      );
    }
    this.hostReferences += 1;
    return entry;
  }

  /** Guest memory for `length` bytes from `offset` in page `pages[index]` (within one region: see maxRunPages). */
  #target(index: number, offset: number, length: number): Uint8Array {
    const page = (this.#current ?? released()).pages[index]!;
    if (page >= this.#memory!.pageCount) {
      throw new MigrationError('ERR_PAGE_OUT_OF_RANGE', `page ${page} is outside the VM`);
    }
    const start = ((page & this.#pageMask) << this.#pageShift) + offset;
    return this.#regions[page >>> this.#regionShift]!.subarray(start, start + length);
  }
}

/** Pages of a frame begun before the VM's memory was released (it was destroyed meanwhile). */
function released(): never {
  throw new MigrationError('ERR_VM_STATE', "the VM's guest memory was released: its pages are not taken");
}

/**
 * The encoded part of one batch, read in batch order: the next Delta's bytes, Dedup's reference,
 * Compressed page's bytes (the block inflated on first use, to exactly its pages' size).
 */
class EncodedPages {
  readonly #meta: PagesMeta;
  readonly #encoded: Uint8Array;
  readonly #pageSize: number;
  #deltaIndex = 0;
  #deltaAt = 0;
  #refIndex = 0;
  #compressedIndex = 0;
  #block: Uint8Array | undefined;

  constructor(meta: PagesMeta, encoded: Uint8Array | undefined, pageSize: number) {
    this.#meta = meta;
    this.#encoded = encoded ?? new Uint8Array(0);
    this.#pageSize = pageSize;
  }

  nextDelta(): Uint8Array {
    const length = this.#meta.deltas![this.#deltaIndex++]!;
    const bytes = this.#encoded.subarray(this.#deltaAt, this.#deltaAt + length);
    this.#deltaAt += length;
    return bytes;
  }

  nextRef(): number {
    return this.#meta.refs![this.#refIndex++]!;
  }

  nextCompressed(): Uint8Array {
    const k = this.#compressedIndex++;
    return this.#inflated().subarray(k * this.#pageSize, (k + 1) * this.#pageSize);
  }

  /** Step over a page that is not applied. */
  skip(kind: number): void {
    if (kind === PageKind.Delta) this.nextDelta();
    else if (kind === PageKind.Dedup) this.nextRef();
    else if (kind === PageKind.Compressed) this.#compressedIndex++;
  }

  #inflated(): Uint8Array {
    if (this.#block !== undefined) return this.#block;
    const { zcodec, zlen, kinds } = this.#meta;
    const codec = COMPRESSION_CODECS[zcodec!];
    if (codec === undefined) throw new MigrationError('ERR_BAD_ENCODING', `unknown compression codec ${zcodec}`);
    let pages = 0;
    for (let i = 0; i < kinds.length; i++) if (kinds[i] === PageKind.Compressed) pages++;
    // The block is the encoded part's tail (after the deltas); page-encodings.ts checked its length.
    const block = this.#encoded.subarray(this.#encoded.length - zlen!);
    this.#block = decompressSync(block, pages * this.#pageSize, codec);
    return this.#block;
  }
}
