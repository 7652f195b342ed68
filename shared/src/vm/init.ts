/**
 * Initial guest memory: `zero` (nothing to do: fresh SharedArrayBuffers are zero and lazily
 * backed), `random` (every page random) or `mixed:<f>` (a fraction f of the pages zero, the rest
 * random). Deterministic from the seed and position-independent: page n's bytes are the
 * AES-128-CTR keystream at byte offset n·4096 under a key derived from the seed, and whether it
 * is zero is hash(n, seed) < f — so page n is the same whatever the VM size, region size or
 * chunking. AES-CTR runs at several GB/s through OpenSSL (AES-NI); the cost of random init is
 * mostly the kernel faulting in fresh memory.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { MigrationError } from '../errors.ts';
import { PAGE_SIZE, type GuestMemory } from './guest-memory.ts';
import { deriveKey, hash32 } from './prng.ts';

/** A parsed --init spec. */
export type InitSpec = { kind: 'zero' } | { kind: 'random' } | { kind: 'mixed'; zeroFraction: number };

const CHUNK = 64 * 1024; // keystream per cipher.update: small enough to stay in cache
const YIELD_EVERY = 64 * 1024 * 1024; // let the event loop breathe during multi-GiB inits

/** Parses `zero | random | mixed:<fraction of zero pages in [0,1]>`. Throws ERR_INVALID_INIT. */
export function parseInitSpec(text: string): InitSpec {
  const t = text.trim().toLowerCase();
  if (t === 'zero') return { kind: 'zero' };
  if (t === 'random') return { kind: 'random' };
  const match = /^mixed:(\d+(?:\.\d+)?|\.\d+)$/.exec(t);
  const zeroFraction = match ? Number(match[1]) : NaN;
  if (!match || !(zeroFraction >= 0 && zeroFraction <= 1)) {
    throw new MigrationError(
      'ERR_INVALID_INIT',
      `bad --init "${text}": use zero, random, or mixed:<fraction of zero pages between 0 and 1>, e.g. mixed:0.5`,
    );
  }
  return { kind: 'mixed', zeroFraction };
}

/** Canonical text of an init spec ("zero", "random", "mixed:0.5"). */
export function formatInitSpec(init: InitSpec): string {
  return init.kind === 'mixed' ? `mixed:${init.zeroFraction}` : init.kind;
}

/** Whether page n of a `mixed:<zeroFraction>` VM seeded with `seed` starts zero. */
export function isInitZeroPage(n: number, seed: number, zeroFraction: number): boolean {
  return zeroPageTest(seed, zeroFraction)(n);
}

function zeroPageTest(seed: number, zeroFraction: number): (n: number) => boolean {
  const key = deriveKey(seed, 2);
  const threshold = zeroFraction * 2 ** 32;
  return (n) => hash32((n ^ key) | 0) < threshold;
}

/**
 * Fills fresh (all-zero) memory as `init` says and marks the non-zero pages in memory.touched.
 * Yields to the event loop every 64 MiB.
 */
export async function initialiseMemory(memory: GuestMemory, init: InitSpec, seed: number): Promise<void> {
  if (init.kind === 'zero') return;
  const key = createHash('sha256').update(`livemig/init/${seed}`).digest().subarray(0, 16);
  const zeroFraction = init.kind === 'mixed' ? init.zeroFraction : 0;
  const isZero = zeroPageTest(seed, zeroFraction);
  const zeroInput = Buffer.alloc(CHUNK);
  const pagesPerRegion = memory.regionBytes / PAGE_SIZE;
  let sinceYield = 0;
  for (let r = 0; r < memory.regions.length; r++) {
    const region = memory.region(r);
    const firstPage = r * pagesPerRegion;
    const cipher = createCipheriv('aes-128-ctr', key, counterBlock((firstPage * PAGE_SIZE) / 16));
    for (let offset = 0; offset < region.length; offset += CHUNK) {
      const length = Math.min(CHUNK, region.length - offset);
      const stream = cipher.update(length === CHUNK ? zeroInput : zeroInput.subarray(0, length));
      const chunkPage = firstPage + offset / PAGE_SIZE;
      if (zeroFraction === 0) {
        region.set(stream, offset);
        for (let i = 0; i < length / PAGE_SIZE; i++) memory.touched.set(chunkPage + i);
      } else {
        for (let i = 0; i < length / PAGE_SIZE; i++) {
          const n = chunkPage + i;
          if (isZero(n)) continue;
          region.set(stream.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), offset + i * PAGE_SIZE);
          memory.touched.set(n);
        }
      }
      sinceYield += length;
      if (sinceYield >= YIELD_EVERY) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  }
}

/** A 16-byte big-endian CTR counter block holding `block`. */
function counterBlock(block: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(Math.floor(block / 2 ** 32), 8);
  iv.writeUInt32BE(block >>> 0, 12);
  return iv;
}
