/**
 * Which pages the destination does not have current at a post-copy switchover — a pure
 * function, computed inside the downtime, once. A page is absent when it was never sent (the
 * rest of the round in progress — all of round 0 for pure post-copy) or was written since it
 * was sent (dirty, not yet re-sent, plus the final harvest). Nothing sent yet is the common
 * case of pure post-copy and 1 GiB of it must not loop per page: the "possibly non-zero" map
 * itself is the answer, copied word by word.
 */
import { Bitmap, type ReadonlyBitmap } from '@livemig/shared/vm';

export interface AbsentInput {
  pageCount: number;
  /** True when no page has been sent yet. */
  nothingSent: boolean;
  /** Every page that may be non-zero now (exact right after the final harvest). */
  possiblyNonZero: ReadonlyBitmap;
  /** Pages of the round in progress not sent yet. */
  unsentOfRound: Uint32Array;
  /** Pages dirtied since they were sent, harvested before the pause. */
  dirty: Uint32Array;
  /** Pages harvested at the pause. */
  harvested: Uint32Array;
}

export function absentAtSwitchover(input: AbsentInput): Bitmap {
  if (input.nothingSent) {
    return input.possiblyNonZero.clone();
  }
  const absent = new Bitmap(input.pageCount);
  for (const list of [input.unsentOfRound, input.dirty, input.harvested]) {
    for (let i = 0; i < list.length; i++) absent.set(list[i]!);
  }
  return absent;
}
