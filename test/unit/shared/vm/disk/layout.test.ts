import { describe, expect, it } from 'vitest';
import {
  BLK_RING_PAGES,
  BLK_RING_SLOTS,
  BLK_SLOT_BYTES,
  MAX_REQUEST_BLOCKS,
  OP_FLUSH,
  OP_READ,
  OP_WRITE,
  SLOT_PAGES,
  S_INVALID,
  S_UNSUPP,
  blkSlotOffset,
  decodeRequest,
  encodeRequest,
  validateRequest,
  type BlkRequest,
} from '../../../../../shared/src/vm/disk/layout.ts';

const limits = { blockCount: 1000, pageCount: 256, ringPage: 10 };
const req = (r: Partial<BlkRequest>): BlkRequest => ({ op: OP_READ, block: 0, count: 1, tag: 0, pages: [50], ...r });

describe('disk ring layout', () => {
  it('fits the slots in the ring pages and wraps slot indices', () => {
    expect(SLOT_PAGES + 4 * MAX_REQUEST_BLOCKS).toBeLessThanOrEqual(BLK_SLOT_BYTES);
    expect(BLK_RING_SLOTS * BLK_SLOT_BYTES).toBe((BLK_RING_PAGES - 1) * 4096);
    expect(blkSlotOffset(10, 0)).toBe(11 * 4096);
    expect(blkSlotOffset(10, BLK_RING_SLOTS + 1)).toBe(11 * 4096 + BLK_SLOT_BYTES);
    expect(blkSlotOffset(10, 0xffff_ffff)).toBe(11 * 4096 + (BLK_RING_SLOTS - 1) * BLK_SLOT_BYTES);
  });

  it('decodes what it encodes (little-endian u32s), reading at most MAX_REQUEST_BLOCKS pages', () => {
    const view = new DataView(new ArrayBuffer(BLK_SLOT_BYTES));
    const r = req({ op: OP_WRITE, block: 123_456, count: 3, tag: 0xffff_ffff, pages: [7, 8, 9] });
    encodeRequest(view, 0, r);
    expect(view.getUint32(4, true)).toBe(123_456);
    expect(decodeRequest(view, 0)).toEqual(r);
    view.setUint32(8, 0xffff_ffff, true); // a guest claiming 2^32 − 1 blocks
    expect(decodeRequest(view, 0).pages).toHaveLength(MAX_REQUEST_BLOCKS);
  });

  it.each([
    ['a read in range', req({}), undefined],
    [
      'a write of MAX blocks at the end',
      req({ op: OP_WRITE, block: 1000 - 8, count: 8, pages: [1, 2, 3, 4, 5, 6, 7, 8] }),
      undefined,
    ],
    ['a flush, whatever its other fields', req({ op: OP_FLUSH, block: 0xffff_ffff, count: 99, pages: [] }), undefined],
    ['an unknown op', req({ op: 2 }), S_UNSUPP],
    ['count 0', req({ count: 0, pages: [] }), S_INVALID],
    ['count over MAX', req({ count: 9, pages: [1, 2, 3, 4, 5, 6, 7, 8, 9] }), S_INVALID],
    ['count and pages disagreeing', req({ count: 2, pages: [50] }), S_INVALID],
    ['a block past the end', req({ block: 1000 }), S_INVALID],
    ['a range running off the end', req({ block: 999, count: 2, pages: [1, 2] }), S_INVALID],
    ['a page outside memory', req({ pages: [256] }), S_INVALID],
    ['a page in the ring', req({ pages: [10 + BLK_RING_PAGES - 1] }), S_INVALID],
  ] as const)('validateRequest: %s', (_name, r, expected) => {
    expect(validateRequest(r, limits)).toBe(expected);
  });
});
