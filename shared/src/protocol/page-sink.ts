/**
 * The PageSink contract: where a receiver's Pages bytes go instead of being assembled into a
 * message, so that the destination copies each page once — straight into guest memory — or not
 * at all (`pageTarget`: the kernel reads the bytes there). The FrameDecoder drives it (calls, in
 * stream order, from inside `push`/`feed`); FramedSocket's receive path offers the in-place
 * reads; the destination's PageApplier (shared/src/channel) is the implementation. It is its own
 * file because those three meet only here.
 *
 * Ownership, the one rule to remember: a `bytes` view handed to `pageBytes` is a view of the
 * caller's read buffer, valid only during that call. Copy it, never keep it.
 */
import type { PagesMeta } from './message-types.ts';

/**
 * Where Pages bytes go when the decoder should not assemble them. All three are called
 * synchronously from inside `push`/`feed`, in stream order. With a sink installed, Pages frames
 * are delivered to it only (they are not also returned as messages).
 */
export interface PageSink {
  /** A Pages frame's metadata arrived and passed every check; its raw bytes follow. */
  pagesBegin(meta: PagesMeta): void;
  /**
   * `bytes` are the bytes of page `meta.pages[index]` starting at `offset` within that page (a
   * page may arrive in several pieces). `bytes` is a view of the caller's chunk: valid only
   * during this call — copy it (once, into guest memory), never keep it.
   */
  pageBytes(index: number, offset: number, bytes: Uint8Array): void;
  /**
   * Let one pageBytes call cover a run of up to this many pages: when the batch's consecutive
   * raw pages have consecutive page numbers (`pages[i + 1] === pages[i] + 1`), `bytes` may run on
   * from page `pages[index]` into the following ones, so the sink copies a run with one call
   * (round 0 sends memory in order). A run never crosses a page number that is a multiple of
   * this value, so with memory split into regions of `maxRunPages` pages a run stays inside one
   * region. Absent or 1: every call stays within one page.
   */
  readonly maxRunPages?: number;
  /**
   * Optional, for receiving without any user-space copy: return the guest memory where `length`
   * bytes starting at `offset` in page `meta.pages[index]` belong (running on into the following
   * pages of the run, as for pageBytes), or undefined to get them through pageBytes instead.
   * A FramedSocket then lets the kernel read those bytes straight into that memory; they are not
   * passed to pageBytes. The bytes land before pagesEnd, possibly partially if the connection
   * dies: return undefined for memory the guest may be using (e.g. pages already present in
   * post-copy).
   */
  pageTarget?(index: number, offset: number, length: number): Uint8Array | undefined;
  /**
   * Every byte of the batch has been delivered. Zero-kind pages got no pageBytes calls: the sink
   * applies them from `meta.kinds` (e.g. here, or in pagesBegin). Encoded pages (Delta, Dedup,
   * Compressed: page-encodings.ts) got none either: their bytes are `encoded` (the payload after
   * the raw pages; undefined when empty), valid only during this call.
   */
  pagesEnd(meta: PagesMeta, encoded?: Uint8Array): void;
}
