/**
 * Initial guest memory. `zero` (nothing to do: fresh SharedArrayBuffers are zero and lazily
 * backed), `random` (every page random), `mixed:<f>` (a fraction f of the pages zero, the rest
 * random), an explicit mix of page kinds `mixed:zero=0.3,dup=0.1,text=0.2,code=0.3,random=0.1`
 * (init-pages.ts makes the dup, text and code pages), or `realistic`, one such mix taken from
 * published measurements of guest RAM (REALISTIC_MIX; README "Initial memory").
 *
 * Deterministic from the seed and position-independent: the kind of page n is
 * hash32(n ^ key(seed)) against the mix's cumulative fractions, a random page's bytes are the
 * AES-128-CTR keystream at byte offset n·4096 under a key derived from the seed, and a dup, text
 * or code page depends only on (seed, n) — so page n is the same whatever the VM size, region
 * size or chunking. Zero comes first in the draw, so a mix of only zero and random pages is
 * byte for byte `mixed:<its zero fraction>`. AES-CTR runs at GB/s through OpenSSL; the cost of
 * random init is the keystream and the kernel faulting in fresh memory.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { MigrationError } from '../errors.ts';
import { PAGE_SIZE, type GuestMemory } from './guest-memory.ts';
import { PAGE_KINDS, PageSynth, pageKindTest, type PageKind, type PageMix } from './init-pages.ts';
import { deriveKey, hash32 } from './prng.ts';

export { PAGE_KINDS, type PageKind, type PageMix } from './init-pages.ts';

/** A parsed --init spec. */
export type InitSpec =
  | { kind: 'zero' }
  | { kind: 'random' }
  /** `mixed:<f>`: a fraction f of the pages zero, the rest random. */
  | { kind: 'mixed'; zeroFraction: number }
  /** `mixed:zero=…,dup=…,text=…,code=…,random=…` and `realistic`. */
  | { kind: 'mix'; mix: PageMix };

/**
 * `realistic`: a model of a guest that has run for a while, chosen from published figures (see
 * README "Initial memory" for the sources): about a third zero, an eighth duplicates, the rest
 * mostly compressible text and code/heap, a tenth incompressible.
 */
export const REALISTIC_MIX: PageMix = Object.freeze({ zero: 0.3, dup: 0.12, text: 0.2, code: 0.28, random: 0.1 });

const CHUNK = 64 * 1024; // keystream per cipher.update: small enough to stay in cache
const YIELD_EVERY = 64 * 1024 * 1024; // let the event loop breathe during multi-GiB inits
const FRACTION = /^(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/;
const FORMS = 'zero, random, realistic, mixed:<fraction of zero pages> or mixed:zero=…,dup=…,text=…,code=…,random=…';

/**
 * Parses `zero | random | realistic | mixed:<fraction of zero pages in [0,1]> |
 * mixed:<kind>=<fraction>,…` (kinds zero, dup, text, code, random; a kind not given is 0; each
 * fraction in [0,1], their sum 1 within 1e-9). Case and spaces around the text are ignored.
 * Throws ERR_INVALID_INIT naming the problem.
 */
export function parseInitSpec(text: string): InitSpec {
  const t = text.trim().toLowerCase();
  if (t === 'zero') return { kind: 'zero' };
  if (t === 'random') return { kind: 'random' };
  if (t === 'realistic') return { kind: 'mix', mix: REALISTIC_MIX };
  if (t.startsWith('mixed:') && t.includes('=')) return { kind: 'mix', mix: parseMix(text, t.slice('mixed:'.length)) };
  const match = /^mixed:(.*)$/.exec(t);
  const zeroFraction = match && FRACTION.test(match[1]!) ? Number(match[1]) : NaN;
  if (!(zeroFraction >= 0 && zeroFraction <= 1)) {
    throw invalid(text, `use ${FORMS}; e.g. mixed:0.5 makes half the pages zero, the rest random`);
  }
  return { kind: 'mixed', zeroFraction };
}

function parseMix(text: string, body: string): PageMix {
  const mix: Record<PageKind, number> = { zero: 0, dup: 0, text: 0, code: 0, random: 0 };
  const seen = new Set<string>();
  for (const item of body.split(',')) {
    const [name = '', value, extra] = item.split('=').map((s) => s.trim());
    if (value === undefined || extra !== undefined || name === '') {
      throw invalid(text, `"${item.trim()}" is not <kind>=<fraction>, e.g. zero=0.3`);
    }
    if (!(PAGE_KINDS as readonly string[]).includes(name)) {
      throw invalid(text, `unknown page kind "${name}": the kinds are ${PAGE_KINDS.join(', ')}`);
    }
    if (seen.has(name)) throw invalid(text, `${name} is given twice`);
    seen.add(name);
    const fraction = FRACTION.test(value) ? Number(value) : NaN;
    if (!(fraction >= 0 && fraction <= 1)) throw invalid(text, `${name}=${value} is not a fraction between 0 and 1`);
    mix[name as PageKind] = fraction;
  }
  const sum = PAGE_KINDS.reduce((s, kind) => s + mix[kind], 0);
  if (Math.abs(sum - 1) > 1e-9) throw invalid(text, `the fractions sum to ${sum}, not 1`);
  return mix;
}

function invalid(text: string, why: string): MigrationError {
  return new MigrationError('ERR_INVALID_INIT', `bad --init "${text}": ${why}`);
}

/**
 * Canonical text of an init spec: "zero", "random", "mixed:0.5", or for a mix its kinds in
 * PAGE_KINDS order, those at 0 left out ("mixed:zero=0.3,dup=0.12,…"; `realistic` is written
 * out, so the spec says what the memory is whatever a later version calls realistic).
 * parseInitSpec reads it back to an equal spec.
 */
export function formatInitSpec(init: InitSpec): string {
  switch (init.kind) {
    case 'mixed':
      return `mixed:${init.zeroFraction}`;
    case 'mix':
      return `mixed:${PAGE_KINDS.filter((kind) => init.mix[kind] > 0)
        .map((kind) => `${kind}=${init.mix[kind]}`)
        .join(',')}`;
    default:
      return init.kind;
  }
}

/** Whether page n of a `mixed:<zeroFraction>` VM seeded with `seed` starts zero. */
export function isInitZeroPage(n: number, seed: number, zeroFraction: number): boolean {
  return zeroPageTest(seed, zeroFraction)(n);
}

/** The kind page n starts as in a VM seeded with `seed` whose memory is `init`. */
export function initPageKind(n: number, seed: number, init: InitSpec): PageKind {
  switch (init.kind) {
    case 'zero':
      return 'zero';
    case 'random':
      return 'random';
    case 'mixed':
      return isInitZeroPage(n, seed, init.zeroFraction) ? 'zero' : 'random';
    case 'mix':
      return PAGE_KINDS[pageKindTest(seed, init.mix)(n)]!;
  }
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
  let zeroFraction = init.kind === 'mixed' ? init.zeroFraction : 0;
  if (init.kind === 'mix') {
    const { mix } = init;
    if (mix.dup + mix.text + mix.code > 0) return initialiseMix(memory, mix, seed);
    if (mix.random === 0) return; // all zero (the fractions may sum to 1 − 1e-9)
    zeroFraction = mix.zero; // only zero and random pages: `mixed:<zero fraction>`
  }
  const key = keystreamKey(seed);
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

/**
 * A mix with dup, text or code pages. Random pages get the same keystream as in `random`, made
 * only for them: AES-128-ECB over their counter blocks is the CTR keystream at those blocks.
 */
async function initialiseMix(memory: GuestMemory, mix: PageMix, seed: number): Promise<void> {
  const kindOf = pageKindTest(seed, mix);
  const synth = PageSynth.of(seed);
  const ecb = createCipheriv('aes-128-ecb', keystreamKey(seed), null).setAutoPadding(false);
  const chunkPages = CHUNK / PAGE_SIZE;
  const counters = Buffer.alloc(CHUNK);
  const counterWords = new DataView(counters.buffer, counters.byteOffset, counters.length);
  const randomPages: number[] = [];
  const pagesPerRegion = memory.regionBytes / PAGE_SIZE;
  let sinceYield = 0;
  for (let r = 0; r < memory.regions.length; r++) {
    const region = memory.region(r);
    const firstPage = r * pagesPerRegion;
    for (let offset = 0; offset < region.length; offset += CHUNK) {
      const pages = Math.min(chunkPages, (region.length - offset) / PAGE_SIZE);
      const chunkPage = firstPage + offset / PAGE_SIZE;
      randomPages.length = 0;
      for (let i = 0; i < pages; i++) {
        const n = chunkPage + i;
        const at = offset + i * PAGE_SIZE;
        switch (kindOf(n)) {
          case 0:
            continue;
          case 1:
            synth.dup(region, at, n);
            break;
          case 2:
            synth.text(region, at, n);
            break;
          case 3:
            synth.code(region, at, n);
            break;
          default:
            randomPages.push(n);
        }
        memory.touched.set(n);
      }
      if (randomPages.length > 0) {
        // Counter blocks n·256 … n·256+255 of each random page (big-endian, low 32 bits: n < 2^24).
        for (let p = 0; p < randomPages.length; p++) {
          const block = randomPages[p]! * (PAGE_SIZE / 16);
          for (let b = 0; b < PAGE_SIZE / 16; b++) counterWords.setUint32(p * PAGE_SIZE + b * 16 + 12, block + b);
        }
        const stream = ecb.update(counters.subarray(0, randomPages.length * PAGE_SIZE));
        for (let p = 0; p < randomPages.length; p++) {
          const at = (randomPages[p]! - firstPage) * PAGE_SIZE;
          region.set(stream.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), at);
        }
      }
      sinceYield += pages * PAGE_SIZE;
      if (sinceYield >= YIELD_EVERY) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  }
}

/** The AES key of random pages. */
function keystreamKey(seed: number): Buffer {
  return createHash('sha256').update(`livemig/init/${seed}`).digest().subarray(0, 16);
}

/** A 16-byte big-endian CTR counter block holding `block`. */
function counterBlock(block: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(Math.floor(block / 2 ** 32), 8);
  iv.writeUInt32BE(block >>> 0, 12);
  return iv;
}
