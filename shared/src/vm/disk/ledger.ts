/**
 * The disk digest kept block by block (disk/digest.ts defines it): update(block, bytes) as blocks
 * are sent, received or written, in any order, a block any number of times (the last bytes
 * win); digest() then equals digestDisk() of an image holding exactly those blocks, every other
 * block a hole (zero). Both sides of a disk migration keep one: the source feeds it every block
 * it sends, the destination every block it receives, so the two digests compared at the
 * switchover are each computed on its own side, without reading the disk in the downtime.
 *
 * Two levels, so a sparse terabyte costs nothing: blocks are grouped in chunks of CHUNK_BLOCKS
 * (256 MiB of disk); a chunk's hash list (8 bytes per block, 512 KiB) is allocated only when one
 * of its blocks is first updated, and a chunk never touched contributes a precomputed hash.
 *
 *   block hash   xxhash64(block bytes)
 *   chunk hash   xxhash64(block hash ‖ … ) over the chunk's blocks (the last chunk may be short)
 *   digest       xxhash64(chunk hash 0 ‖ chunk hash 1 ‖ … ), 16 hex digits
 */
import { createXXHash64, type IHasher } from 'hash-wasm';
import { MigrationError } from '../../errors.ts';
import { BLOCK_SIZE } from './image.ts';

/** Blocks per chunk of the digest's first level (256 MiB of disk). */
export const CHUNK_BLOCKS = 65_536;
const HASH_BYTES = 8;

// One synchronous hasher per thread for block and chunk hashes: each use is init → update →
// digest without an await in between, so sharing it is safe.
const hasher: IHasher = await createXXHash64();
const ZERO_BLOCK_HASH = hash(new Uint8Array(BLOCK_SIZE));
/** Chunk hashes of untouched chunks, by length in blocks (a full one and at most one short one). */
const untouchedChunkHash = new Map<number, Uint8Array>();

function hash(bytes: Uint8Array): Uint8Array {
  hasher.init();
  hasher.update(bytes);
  return hasher.digest('binary');
}

function zeroHashes(blocks: number): Uint8Array {
  const out = new Uint8Array(blocks * HASH_BYTES);
  for (let b = 0; b < blocks; b++) out.set(ZERO_BLOCK_HASH, b * HASH_BYTES);
  return out;
}

function untouched(blocks: number): Uint8Array {
  let h = untouchedChunkHash.get(blocks);
  if (!h) {
    h = hash(zeroHashes(blocks));
    untouchedChunkHash.set(blocks, h);
  }
  return h;
}

/** The block hashes of `data` (whole blocks, concatenated): 8 bytes each, in order, for setHash. */
export function blockHashes(data: Uint8Array): Uint8Array {
  if (data.length % BLOCK_SIZE !== 0) {
    throw new MigrationError('ERR_INVALID_ARGUMENT', `whole blocks of ${BLOCK_SIZE} bytes, got ${data.length} bytes`);
  }
  const count = data.length / BLOCK_SIZE;
  const out = new Uint8Array(count * HASH_BYTES);
  for (let k = 0; k < count; k++) out.set(hash(data.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE)), k * HASH_BYTES);
  return out;
}

export class BlockDigestLedger {
  /** Blocks covered. */
  readonly blockCount: number;
  /** Chunk index → its block hashes, for chunks updated at least once. */
  readonly #chunks = new Map<number, Uint8Array>();

  /** A ledger of `blockCount` holes. */
  constructor(blockCount: number) {
    if (!Number.isSafeInteger(blockCount) || blockCount < 1) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `a disk has at least one block, got ${blockCount}`);
    }
    this.blockCount = blockCount;
  }

  /** Records block `block`'s bytes (BLOCK_SIZE of them). */
  update(block: number, bytes: Uint8Array): void {
    if (bytes.length !== BLOCK_SIZE) {
      throw new MigrationError('ERR_INVALID_ARGUMENT', `a block is ${BLOCK_SIZE} bytes, got ${bytes.length}`);
    }
    this.#hashesOf(block).set(hash(bytes), (block % CHUNK_BLOCKS) * HASH_BYTES);
  }

  /** Records `count` blocks from `first`, their bytes concatenated in `data`. */
  updateRun(first: number, data: Uint8Array): void {
    const count = data.length / BLOCK_SIZE;
    for (let k = 0; k < count; k++) this.update(first + k, data.subarray(k * BLOCK_SIZE, (k + 1) * BLOCK_SIZE));
  }

  /**
   * Records block `block` by its hash: entry `index` of `hashes` (blockHashes' output). For a
   * side that keeps two ledgers of the same bytes (a destination: what it received, and its
   * disk's live one), so each block is hashed once.
   */
  setHash(block: number, hashes: Uint8Array, index: number): void {
    this.#hashesOf(block).set(
      hashes.subarray(index * HASH_BYTES, (index + 1) * HASH_BYTES),
      (block % CHUNK_BLOCKS) * HASH_BYTES,
    );
  }

  /** The digest of the blocks recorded so far (hex; same definition as digestDisk). */
  digest(): string {
    const chunks = Math.ceil(this.blockCount / CHUNK_BLOCKS);
    const top = new Uint8Array(chunks * HASH_BYTES);
    for (let c = 0; c < chunks; c++) {
      const hashes = this.#chunks.get(c);
      top.set(hashes ? hash(hashes) : untouched(this.#chunkBlocks(c)), c * HASH_BYTES);
    }
    hasher.init();
    hasher.update(top);
    return hasher.digest('hex');
  }

  #chunkBlocks(chunk: number): number {
    return Math.min(CHUNK_BLOCKS, this.blockCount - chunk * CHUNK_BLOCKS);
  }

  #hashesOf(block: number): Uint8Array {
    if (!(Number.isSafeInteger(block) && block >= 0 && block < this.blockCount)) {
      throw new MigrationError(
        'ERR_BLOCK_OUT_OF_RANGE',
        `block ${block} is outside the disk (0..${this.blockCount - 1})`,
      );
    }
    const chunk = Math.floor(block / CHUNK_BLOCKS);
    let hashes = this.#chunks.get(chunk);
    if (!hashes) {
      hashes = zeroHashes(this.#chunkBlocks(chunk));
      this.#chunks.set(chunk, hashes);
    }
    return hashes;
  }
}
