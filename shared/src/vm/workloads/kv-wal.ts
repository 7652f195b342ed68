/**
 * The kv workload's write-ahead log on the VM's disk (issue 15): its format, shared by the guest
 * (kv.ts writes it a word at a time into its log buffer page) and by whoever reads an image
 * (tests now; a recovery or a replay later). The guest's side of the protocol — when a record is
 * written and when its request is acknowledged — is in kv.ts.
 *
 * The log is the disk itself, from block 0 on, KV_WAL_RECORDS_PER_BLOCK records of
 * KV_WAL_RECORD_BYTES per block. Record number n (n = seq − 1) lives in block
 * ⌊n / KV_WAL_RECORDS_PER_BLOCK⌋ mod walBlocks, slot n mod KV_WAL_RECORDS_PER_BLOCK
 * (walPosition). A block fills up one record at a time: each record's write rewrites the whole
 * tail block (the records already in it, the new one, zeros after it), and a block's first record
 * starts it from zeros — so a block never shows a record from an earlier lap after a newer one.
 *
 * Wrapping: once the log reaches the end of the disk it starts over at block 0, overwriting the
 * oldest records. That is acceptable here because the table in guest memory is the service's
 * state and the log's job is to make each acknowledged write durable before its reply; a real
 * store would checkpoint the table before reusing log space. seq is a u32 and wraps too (after
 * 2^32 records).
 *
 * Record (little-endian u32s, 32 bytes):
 *   | magic | seq | op | key | value | id | 0 | checksum |
 * magic KV_WAL_MAGIC ("KVWL"); seq counts the records the guest has logged, from 1; op is the
 * request's (KvOp.Put or KvOp.Del); key, value and id are the request's as it arrived (a DEL's
 * value is whatever the client sent); checksum = walChecksum(seq, op, key, value, id). Every PUT
 * and DEL is logged, including one that turns out NOT_FOUND or FULL: the log is of requests in
 * the order they were applied, so replaying it from an empty table gives the same table and
 * the same outcomes.
 */
import { KvOp } from '../../kv/protocol.ts';
import { hash32 } from '../prng.ts';

/** A record's first word: "KVWL" as a little-endian u32. */
export const KV_WAL_MAGIC = 0x4c57564b;
/** Bytes per log record. */
export const KV_WAL_RECORD_BYTES = 32;
/** Log records per disk block. */
export const KV_WAL_RECORDS_PER_BLOCK = 4096 / KV_WAL_RECORD_BYTES;

/** Word offsets inside a record. */
export const WAL_W_MAGIC = 0;
export const WAL_W_SEQ = 1;
export const WAL_W_OP = 2;
export const WAL_W_KEY = 3;
export const WAL_W_VALUE = 4;
export const WAL_W_ID = 5;
export const WAL_W_CHECKSUM = 7;

/** A decoded log record. */
export interface KvWalRecord {
  /** Its number in the log, from 1 (u32). */
  seq: number;
  /** KvOp.Put or KvOp.Del. */
  op: number;
  key: number;
  value: number;
  /** The request's id. */
  id: number;
}

/** The checksum of a record's fields (u32). The guest computes it with the same function. */
export function walChecksum(seq: number, op: number, key: number, value: number, id: number): number {
  let h = hash32((KV_WAL_MAGIC ^ seq) >>> 0);
  h = hash32((h ^ op) >>> 0);
  h = hash32((h ^ key) >>> 0);
  h = hash32((h ^ value) >>> 0);
  return hash32((h ^ id) >>> 0);
}

/** Where record `seq` (from 1) goes in a log of `walBlocks` blocks: its block and its slot in it. */
export function walPosition(seq: number, walBlocks: number): { block: number; slot: number } {
  const n = (seq - 1) >>> 0;
  return { block: Math.floor(n / KV_WAL_RECORDS_PER_BLOCK) % walBlocks, slot: n % KV_WAL_RECORDS_PER_BLOCK };
}

/** The record at byte `at` of `bytes`, or null if there is none there (zeros, a bad magic, op or checksum). */
export function decodeWalRecord(bytes: Uint8Array, at: number): KvWalRecord | null {
  if (at < 0 || at + KV_WAL_RECORD_BYTES > bytes.length) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, KV_WAL_RECORD_BYTES);
  const word = (w: number): number => view.getUint32(w * 4, true);
  if (word(WAL_W_MAGIC) !== KV_WAL_MAGIC || word(6) !== 0) return null;
  const record = {
    seq: word(WAL_W_SEQ),
    op: word(WAL_W_OP),
    key: word(WAL_W_KEY),
    value: word(WAL_W_VALUE),
    id: word(WAL_W_ID),
  };
  if (record.op !== KvOp.Put && record.op !== KvOp.Del) return null;
  if (word(WAL_W_CHECKSUM) !== walChecksum(record.seq, record.op, record.key, record.value, record.id)) return null;
  return record;
}

/**
 * The records of one log block, in slot order, up to the first slot that holds none (a block
 * fills from slot 0 and is zero after its last record).
 */
export function decodeWalBlock(block: Uint8Array): KvWalRecord[] {
  const out: KvWalRecord[] = [];
  for (let slot = 0; slot < KV_WAL_RECORDS_PER_BLOCK; slot++) {
    const record = decodeWalRecord(block, slot * KV_WAL_RECORD_BYTES);
    if (!record) break;
    out.push(record);
  }
  return out;
}

/** Every record of a log image (the disk's bytes from block 0 on, a whole number of blocks), sorted by seq. */
export function decodeWal(image: Uint8Array): KvWalRecord[] {
  const out: KvWalRecord[] = [];
  for (let at = 0; at + 4096 <= image.length; at += 4096) out.push(...decodeWalBlock(image.subarray(at, at + 4096)));
  return out.sort((a, b) => a.seq - b.seq);
}
