/**
 * Exactly-once page installs on a post-copy destination with two writers: the main thread
 * (bulk pages, and pages re-sent after a reconnect) and the fault thread (answers to
 * PageRequests) may both receive the same page. Before writing a byte of page n, a writer
 * claims it — one byte per page, Atomics.compareExchange(0 → its owner id) — and only the
 * winner writes, hashes and marks the page present; the loser drops its copy.
 *
 * The rule that keeps the guest safe: a page already present is never claimed (present pages
 * were installed, or were there at the switchover, and the guest may have written them since),
 * and presence is only ever set by the claim's holder, so a claim that succeeds on an absent page
 * cannot race with anything but the guest's own blocking read of it (which waits for presence).
 *
 * A claim whose bytes never completed (its connection died mid-page, or the fault thread died)
 * is released by its owner's thread — or, for a dead thread, by the main thread — so the page
 * can be installed by whoever receives it next: `release(owner, present)` clears that owner's
 * claims on pages that are still absent.
 */

/** Who holds a claim. */
export const CLAIM_MAIN = 1;
export const CLAIM_FAULT_THREAD = 2;
export type ClaimOwner = typeof CLAIM_MAIN | typeof CLAIM_FAULT_THREAD;

export class PageClaims {
  readonly pageCount: number;
  /** The shared buffer (pass to the fault thread). */
  readonly buffer: SharedArrayBuffer;
  readonly #owners: Uint8Array;

  /** Claims for `pageCount` pages (all free), or a view of an existing buffer (worker side). */
  constructor(pageCount: number, buffer?: SharedArrayBuffer) {
    this.pageCount = pageCount;
    this.buffer = buffer ?? new SharedArrayBuffer(pageCount);
    this.#owners = new Uint8Array(this.buffer, 0, pageCount);
  }

  /**
   * Whether `owner` may write page n: true when it holds the claim already or just took it; false
   * when the page is present (`isPresent`) or the other writer holds it.
   */
  claim(n: number, owner: ClaimOwner, isPresent: (n: number) => boolean): boolean {
    if (isPresent(n)) return false;
    const was = Atomics.compareExchange(this.#owners, n, 0, owner);
    return was === 0 || was === owner;
  }

  /** The claim's holder (0 = none). */
  ownerOf(n: number): number {
    return Atomics.load(this.#owners, n);
  }

  /**
   * Let go of every claim `owner` holds on a page still absent (its bytes never completed).
   * Only while `owner` writes nothing: from its own thread, or after that thread ended.
   */
  release(owner: ClaimOwner, isPresent: (n: number) => boolean): number {
    let released = 0;
    const owners = this.#owners;
    for (let n = 0; n < this.pageCount; n++) {
      if (owners[n] === owner && !isPresent(n) && Atomics.compareExchange(owners, n, owner, 0) === owner) released++;
    }
    return released;
  }
}
