/**
 * Post-copy page presence, as a ToyVm sees it: this module owns the host side of "is page n
 * here yet" on a post-copy destination — marking pages present, installing late pages without
 * ever overwriting one the guest may have written since, waking a vCPU blocked on a page, and
 * telling the vCPU when it can drop presence checks altogether. The set itself is PresenceMap
 * (shared with the vCPU); the faults come from the vCPU (Vcpu.onFault).
 *
 * A VM that is not a post-copy destination has no map: every page is present, marking is a
 * no-op and installPage() is refused.
 */
import { MigrationError } from '../errors.ts';
import type { GuestMemory } from './guest-memory.ts';
import type { ReadonlyBitmap } from './bitmap.ts';
import type { PresenceMap } from './presence-map.ts';
import type { PageFault, Vcpu } from './vcpu.ts';

/** Page presence of one VM (always-present without a map). */
export class PagePresence {
  readonly #memory: GuestMemory;
  readonly #map: PresenceMap | null;
  readonly #vcpu: Vcpu;

  constructor(memory: GuestMemory, map: PresenceMap | null, vcpu: Vcpu) {
    this.#memory = memory;
    this.#map = map;
    this.#vcpu = vcpu;
  }

  /** True if presence is tracked (a post-copy destination). */
  get tracked(): boolean {
    return this.#map !== null;
  }

  /** The presence map's shared buffer (null unless tracked), for a thread that installs pages too. */
  get buffer(): SharedArrayBuffer | null {
    return this.#map?.buffer ?? null;
  }

  /** Pages not yet present (0 unless tracked). */
  get missing(): number {
    return this.#map?.missing ?? 0;
  }

  /** True if page n is present (always, unless tracked). */
  isPresent(n: number): boolean {
    return this.#map ? this.#map.has(n) : true;
  }

  /** Marks pages whose bytes are already in memory as present, waking a vCPU blocked on one. */
  markPresent(pages: Iterable<number>): void {
    const map = this.#map;
    if (!map) return;
    const pageCount = this.#memory.pageCount;
    for (const p of pages) {
      if (!(p >= 0 && p < pageCount)) {
        throw new MigrationError('ERR_PAGE_OUT_OF_RANGE', `page ${p} is outside the VM (0..${pageCount - 1})`);
      }
      if (map.mark(p)) this.#vcpu.pageArrived(p);
    }
    if (map.missing === 0) this.#vcpu.setAllPresent();
  }

  /**
   * Marks present every page not in `absent` (the pages a post-copy switchover says are here),
   * word by word rather than page by page, waking a vCPU blocked on one of them.
   */
  markPresentExcept(absent: ReadonlyBitmap): void {
    const map = this.#map;
    if (!map) return;
    if (absent.size !== this.#memory.pageCount) {
      throw new MigrationError(
        'ERR_PAGE_OUT_OF_RANGE',
        `the absent map covers ${absent.size} pages, the VM has ${this.#memory.pageCount}`,
      );
    }
    if (map.markAllExcept(absent.words) > 0) this.#vcpu.wakeIfArrived((p) => map.has(p));
    if (map.missing === 0) this.#vcpu.setAllPresent();
  }

  /**
   * Copies bytes into page n, marks it present and wakes a vCPU blocked on it. Returns false
   * (and writes nothing) if the page is already present — a late copy must never overwrite it.
   */
  installPage(n: number, bytes: Uint8Array): boolean {
    if (!this.#map) throw new MigrationError('ERR_VM_STATE', 'installPage() is for post-copy destinations');
    if (!(n >= 0 && n < this.#memory.pageCount)) this.#memory.page(n); // throws ERR_PAGE_OUT_OF_RANGE
    if (this.#map.has(n)) return false;
    this.#memory.writePage(n, bytes);
    this.markPresent([n]);
    return true;
  }

  /** Marks every page present: the vCPU drops all presence checks. */
  markAllPresent(): void {
    if (!this.#map) return;
    this.#map.markAll();
    this.#vcpu.setAllPresent();
  }

  /** Calls listener(fault) for each post-copy fault. Returns an unsubscribe function. */
  onFault(listener: (fault: PageFault) => void): () => void {
    return this.#vcpu.onFault(listener);
  }
}
