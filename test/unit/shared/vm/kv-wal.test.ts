import { describe, expect, it } from 'vitest';
import { KvOp } from '../../../../shared/src/kv/index.ts';
import {
  KV_WAL_MAGIC,
  KV_WAL_RECORD_BYTES,
  KV_WAL_RECORDS_PER_BLOCK,
  decodeWal,
  decodeWalBlock,
  decodeWalRecord,
  walChecksum,
  walPosition,
  type KvWalRecord,
} from '../../../../shared/src/vm/workloads/kv-wal.ts';

/** A record as the guest lays it out (little-endian u32s). */
function encode(record: KvWalRecord, into: Uint8Array = new Uint8Array(KV_WAL_RECORD_BYTES), at = 0): Uint8Array {
  const view = new DataView(into.buffer, into.byteOffset + at, KV_WAL_RECORD_BYTES);
  const words = [KV_WAL_MAGIC, record.seq, record.op, record.key, record.value, record.id, 0];
  words.forEach((w, i) => view.setUint32(i * 4, w >>> 0, true));
  view.setUint32(28, walChecksum(record.seq, record.op, record.key, record.value, record.id), true);
  return into;
}

const record = (seq: number, op: number = KvOp.Put): KvWalRecord => ({
  seq,
  op,
  key: 0xffff_0000 + seq,
  value: (seq * 2654435761) >>> 0,
  id: seq + 7,
});

describe('kv write-ahead log format', () => {
  it('128 records of 32 bytes per block; record n + 1 in block n / 128 mod the log, slot n mod 128', () => {
    expect(KV_WAL_RECORDS_PER_BLOCK).toBe(128);
    expect(walPosition(1, 256)).toEqual({ block: 0, slot: 0 });
    expect(walPosition(128, 256)).toEqual({ block: 0, slot: 127 });
    expect(walPosition(129, 256)).toEqual({ block: 1, slot: 0 });
    expect(walPosition(256 * 128 + 1, 256)).toEqual({ block: 0, slot: 0 }); // wrapped
    expect(walPosition(2 ** 32 - 1, 2 ** 25)).toEqual({ block: 2 ** 25 - 1, slot: 126 });
  });

  it('decodes what it encodes, and nothing that is not a record', () => {
    const r = record(5);
    expect(decodeWalRecord(encode(r), 0)).toEqual(r);
    expect(decodeWalRecord(encode(record(6, KvOp.Del)), 0)).toEqual(record(6, KvOp.Del));
    expect(decodeWalRecord(new Uint8Array(KV_WAL_RECORD_BYTES), 0)).toBeNull(); // zeros
    for (let byte = 0; byte < KV_WAL_RECORD_BYTES; byte++) {
      const bad = encode(r);
      bad[byte]! ^= 0x10;
      expect(decodeWalRecord(bad, 0), `byte ${byte} flipped`).toBeNull();
    }
    expect(decodeWalRecord(encode({ ...r, op: KvOp.Get }), 0)).toBeNull(); // a GET is never logged
    expect(decodeWalRecord(encode(r), 1)).toBeNull(); // past the end
  });

  it('a block holds its records up to the first empty slot; a log image sorts them by seq', () => {
    const block = new Uint8Array(4096);
    for (let s = 0; s < 3; s++) encode(record(s + 1), block, s * KV_WAL_RECORD_BYTES);
    encode(record(9), block, 4 * KV_WAL_RECORD_BYTES); // after a hole: not part of the block
    expect(decodeWalBlock(block).map((r) => r.seq)).toEqual([1, 2, 3]);

    const image = new Uint8Array(3 * 4096);
    encode(record(129), image, 0); // block 0 wrapped over: seq 129 in slot 0
    encode(record(2), image, 4096 + KV_WAL_RECORD_BYTES);
    encode(record(1), image, 4096);
    expect(decodeWal(image).map((r) => r.seq)).toEqual([1, 2, 129]);
  });
});
