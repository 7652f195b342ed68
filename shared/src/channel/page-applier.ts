/**
 * The destination's PageSink: Pages bytes go from the socket's reused read buffer straight into
 * guest memory (the one copy), and every completed page updates the PageDigestLedger, so the
 * digest to compare with the source's is ready the moment StopCopyEnd arrives — no rehash of
 * all memory inside the downtime. Zero records clear the page (it may hold an older version).
 */
import { MigrationError } from '../errors.ts';
import type { PageSink, PagesMeta } from '../protocol/index.ts';
import { PageDigestLedger, type GuestMemory } from '../vm/index.ts';

const RAW = 0;

export class PageApplier implements PageSink {
  #memory: GuestMemory | undefined;
  #ledger: PageDigestLedger | undefined;
  #current: PagesMeta | undefined;
  /** Pages received (raw + zero), for stats. */
  pagesReceived = 0;
  /** Called after each page is complete (post-copy marks presence here). */
  onPage: ((page: number) => void) | undefined;

  /** Start writing into this memory; the ledger starts as all-zero (the memory is fresh). */
  attach(memory: GuestMemory): void {
    this.#memory = memory;
    this.#ledger = new PageDigestLedger(memory.pageCount);
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

  pageBytes(index: number, offset: number, bytes: Uint8Array): void {
    this.#memory!.page(this.#current!.pages[index]!).set(bytes, offset);
  }

  pagesEnd(meta: PagesMeta): void {
    const memory = this.#memory!;
    const ledger = this.#ledger!;
    const { pages, kinds } = meta;
    for (let i = 0; i < pages.length; i++) {
      const page = pages[i]!;
      if (kinds[i] === RAW) {
        ledger.update(page, memory.page(page));
      } else {
        // Reading a never-written page does not allocate it; writing would (PERFORMANCE.md).
        if (!memory.isZeroPage(page)) memory.page(page).fill(0);
        ledger.updateZero(page);
      }
      this.onPage?.(page);
    }
    this.pagesReceived += pages.length;
    this.#current = undefined;
  }
}
