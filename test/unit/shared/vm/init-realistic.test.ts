import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemory, PAGE_SIZE } from '../../../../shared/src/vm/guest-memory.ts';
import {
  PAGE_KINDS,
  REALISTIC_MIX,
  formatInitSpec,
  initPageKind,
  initialiseMemory,
  parseInitSpec,
  type InitSpec,
  type PageKind,
  type PageMix,
} from '../../../../shared/src/vm/init.ts';
import { parseVmSpec } from '../../../../shared/src/vm/vm-spec.ts';

const MiB = 1024 * 1024;

async function build(bytes: number, init: string, seed: number, regionBytes?: number): Promise<GuestMemory> {
  const memory = GuestMemory.allocate(bytes, regionBytes ? { regionBytes } : {});
  await initialiseMemory(memory, parseInitSpec(init), seed);
  return memory;
}

function equalPages(a: GuestMemory, b: GuestMemory, pages: number): boolean {
  for (let n = 0; n < pages; n++) if (Buffer.compare(a.page(n), b.page(n)) !== 0) return false;
  return true;
}

function sha256(page: Uint8Array): string {
  return createHash('sha256').update(page).digest('hex');
}

/**
 * SHA-256 over pages 0–31 and 32 pages spread over a 4 MiB VM of 1 MiB regions, and the touched
 * count, as the implementation before realistic/explicit mixes produced them: existing VMs,
 * oracles and tests rely on `zero`, `random` and `mixed:<f>` keeping their bytes.
 */
const BEFORE: readonly (readonly [string, number, string, number])[] = [
  ['random', 1, 'e247e39e7ecc4adb0fb6b11f45d9f57b12d377501a3ca7e0b1232d4ceb796f15', 1024],
  ['random', 42, '3285aaf6c136de768357f1d13873bd0c98eba58a755645c427ef10db9d53feec', 1024],
  ['random', 4294967295, '1158baa7858101640afe395945f02db45926a5be3754b63ac7018661812ac4a5', 1024],
  ['zero', 1, '8a39d2abd3999ab73c34db2476849cddf303ce389b35826850f9a700589b4a90', 0],
  ['mixed:0.5', 1, 'df3ee6f396751dd059409aea5718ca4ff6291251a44268ec9490c85033d5e845', 509],
  ['mixed:0.5', 42, 'cb8dbd4cd376c8340afbbaf9d77a0a20e929c585b125203b863e4cecbcb5fa11', 537],
  ['mixed:0.5', 4294967295, 'a626f0078d1dff586d255dfa22dfc35b16fd8c7807340541e1b325d327697d56', 504],
  ['mixed:0.25', 1, '6fc79e40ab6aea99e92d41d934a4cbe874ea07dab599dbae2d177c20de2ab108', 742],
  ['mixed:0.25', 42, '19465858b4a1ae7ba8e7525372d291d5c970fc8cf9cb3946b24b8d7641154611', 753],
];

async function digest64(init: string, seed: number): Promise<[string, number]> {
  const memory = await build(4 * MiB, init, seed, MiB);
  const hash = createHash('sha256');
  for (let n = 0; n < 32; n++) hash.update(memory.page(n));
  for (let i = 0; i < 32; i++) hash.update(memory.page(32 + i * 29));
  return [hash.digest('hex'), memory.touched.count];
}

describe('zero, random and mixed:<f> are unchanged', () => {
  it.each(BEFORE)('%s with seed %d gives the same bytes as before', async (init, seed, hex, touched) => {
    expect(await digest64(init, seed)).toEqual([hex, touched]);
  });

  it('an explicit mix of zero and random pages is mixed:<zero fraction>, byte for byte', async () => {
    expect(await digest64('mixed:zero=0.5,random=0.5', 42)).toEqual([BEFORE[5]![2], BEFORE[5]![3]]);
    expect(await digest64('mixed:random=0.75,zero=0.25', 1)).toEqual([BEFORE[7]![2], BEFORE[7]![3]]);
    expect(await digest64('mixed:random=1', 1)).toEqual([BEFORE[0]![2], BEFORE[0]![3]]);
  });
});

describe('parseInitSpec: realistic and explicit mixes', () => {
  const mix = (m: Partial<PageMix>): InitSpec => ({
    kind: 'mix',
    mix: { zero: 0, dup: 0, text: 0, code: 0, random: 0, ...m },
  });

  it('realistic is one explicit mix, written out in canonical form', () => {
    const realistic = parseInitSpec('realistic');
    expect(realistic).toEqual({ kind: 'mix', mix: REALISTIC_MIX });
    expect(formatInitSpec(realistic)).toBe('mixed:zero=0.3,dup=0.12,text=0.2,code=0.28,random=0.1');
    expect(parseInitSpec(formatInitSpec(realistic))).toEqual(realistic);
    expect(PAGE_KINDS.reduce((sum, kind) => sum + REALISTIC_MIX[kind], 0)).toBeCloseTo(1, 12);
  });

  it('reads kinds in any order, missing kinds as 0, any case and spacing, exponents', () => {
    expect(parseInitSpec('mixed:zero=0.3,dup=0.2,text=0.2,code=0.1,random=0.2')).toEqual(
      mix({ zero: 0.3, dup: 0.2, text: 0.2, code: 0.1, random: 0.2 }),
    );
    expect(parseInitSpec(' Mixed:TEXT = 0.5 , zero=.5 ')).toEqual(mix({ zero: 0.5, text: 0.5 }));
    expect(parseInitSpec('mixed:code=1')).toEqual(mix({ code: 1 }));
    expect(parseInitSpec('mixed:dup=1e-1,random=9e-1')).toEqual(mix({ dup: 0.1, random: 0.9 }));
    // 0.1 + 0.2 + 0.7 is 0.9999999999999999: within 1e-9 of 1.
    expect(parseInitSpec('mixed:zero=0.1,text=0.2,code=0.7')).toEqual(mix({ zero: 0.1, text: 0.2, code: 0.7 }));
    expect(parseInitSpec('mixed:1e-3')).toEqual({ kind: 'mixed', zeroFraction: 0.001 });
  });

  it.each([
    ['mixed:zero=0.5,ones=0.5', 'unknown page kind "ones"'],
    ['mixed:zero=0.5,zero=0.5', 'zero is given twice'],
    ['mixed:zero=0.5,random=0.4', 'sum to 0.9'],
    ['mixed:zero=0.6,random=0.6', 'sum to 1.2'],
    ['mixed:zero=1.5', 'zero=1.5 is not a fraction between 0 and 1'],
    ['mixed:zero=-0.5,random=1.5', 'zero=-0.5 is not a fraction'],
    ['mixed:zero=half,random=0.5', 'zero=half is not a fraction'],
    ['mixed:zero=,random=1', 'zero= is not a fraction'],
    ['mixed:zero=1,', '"" is not <kind>=<fraction>'],
    ['mixed:=1', '"=1" is not <kind>=<fraction>'],
    ['mixed:zero=0.5=0.5', '"zero=0.5=0.5" is not <kind>=<fraction>'],
    ['mixed:zero=0.5,random', '"random" is not <kind>=<fraction>'],
    ['realistic:1', 'use zero, random, realistic'],
    ['mixed:1e', 'use zero, random, realistic'],
  ])('rejects "%s" with ERR_INVALID_INIT naming the problem', (text, why) => {
    expect(() => parseInitSpec(text)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_INIT', message: expect.stringContaining(why) }),
    );
  });

  it('formatInitSpec gives a text that parses back to the same spec', () => {
    const fraction = fc.double({ min: 0, max: 1, noNaN: true }).filter((f) => !Object.is(f, -0));
    const mixArb = fc
      .tuple(...PAGE_KINDS.map(() => fc.oneof(fc.constant(0), fc.double({ min: 1e-12, max: 1, noNaN: true }))))
      .filter((weights) => weights.some((w) => w > 0))
      .map((weights): InitSpec => {
        const sum = weights.reduce((s, w) => s + w, 0);
        const mix = Object.fromEntries(PAGE_KINDS.map((kind, i) => [kind, weights[i]! / sum]));
        return { kind: 'mix', mix: mix as PageMix };
      });
    const spec = fc.oneof(
      fc.constant<InitSpec>({ kind: 'zero' }),
      fc.constant<InitSpec>({ kind: 'random' }),
      fraction.map((zeroFraction): InitSpec => ({ kind: 'mixed', zeroFraction })),
      mixArb,
    );
    fc.assert(
      fc.property(spec, (init) => {
        const text = formatInitSpec(init);
        expect(parseInitSpec(text)).toEqual(init);
        expect(formatInitSpec(parseInitSpec(text))).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });

  it('a VM spec carries the canonical text, and the destination reads it back', () => {
    const source = parseVmSpec({ memory: '4MiB', init: 'realistic' });
    expect(source.init).toBe(formatInitSpec(parseInitSpec('realistic')));
    // What the destination does with SetupVm.init.
    expect(parseVmSpec({ memory: source.memoryBytes, init: source.init }).init).toBe(source.init);
    const explicit = parseVmSpec({ memory: '4MiB', init: 'mixed:random=0.5,text=0.5' });
    expect(explicit.init).toBe('mixed:text=0.5,random=0.5');
  });
});

describe('initialiseMemory with a realistic mix', () => {
  it('is deterministic from the seed and differs between seeds', async () => {
    const a = await build(2 * MiB, 'realistic', 7);
    const b = await build(2 * MiB, 'realistic', 7);
    const c = await build(2 * MiB, 'realistic', 8);
    expect(equalPages(a, b, a.pageCount)).toBe(true);
    let differ = 0;
    for (let n = 0; n < a.pageCount; n++) if (Buffer.compare(a.page(n), c.page(n)) !== 0) differ++;
    expect(differ).toBeGreaterThan(a.pageCount / 2);
  });

  it('page n is the same whatever the VM size and region size', async () => {
    const small = await build(MiB, 'realistic', 3);
    const large = await build(8 * MiB, 'realistic', 3, MiB);
    const tiny = await build(2 * MiB, 'mixed:dup=0.4,text=0.3,code=0.2,random=0.1', 3, 64 * 1024);
    const other = await build(4 * MiB, 'mixed:dup=0.4,text=0.3,code=0.2,random=0.1', 3);
    expect(equalPages(small, large, small.pageCount)).toBe(true);
    expect(equalPages(tiny, other, tiny.pageCount)).toBe(true);
    // And of the order pages are built in: a VM built after another seed's gets the same bytes.
    await build(MiB, 'realistic', 99);
    expect(equalPages(small, await build(MiB, 'realistic', 3), small.pageCount)).toBe(true);
  });

  it('a 64 MiB realistic VM has the declared mix, by the generator and by looking at the bytes', async () => {
    const seed = 11;
    const init = parseInitSpec('realistic');
    const memory = await build(64 * MiB, 'realistic', seed);
    const pages = memory.pageCount;
    const byKind = new Map<PageKind, number[]>(PAGE_KINDS.map((kind) => [kind, []]));
    const copies = new Map<string, number>();
    const hashes: string[] = [];
    let allZero = 0;
    for (let n = 0; n < pages; n++) {
      const kind = initPageKind(n, seed, init);
      byKind.get(kind)!.push(n);
      const zero = memory.isZeroPage(n);
      if (zero) allZero++;
      expect(zero).toBe(kind === 'zero');
      expect(memory.touched.has(n)).toBe(!zero);
      const hash = zero ? '' : sha256(memory.page(n));
      hashes.push(hash);
      if (!zero) copies.set(hash, (copies.get(hash) ?? 0) + 1);
    }
    // By the generator's own kind of each page.
    for (const kind of PAGE_KINDS) {
      expect(byKind.get(kind)!.length / pages).toBeGreaterThan(REALISTIC_MIX[kind] - 0.02);
      expect(byKind.get(kind)!.length / pages).toBeLessThan(REALISTIC_MIX[kind] + 0.02);
    }
    // Independently: all-zero pages …
    expect(allZero / pages).toBeGreaterThan(REALISTIC_MIX.zero - 0.02);
    expect(allZero / pages).toBeLessThan(REALISTIC_MIX.zero + 0.02);
    // … pages whose content is also somewhere else: only dup pages, nearly all of them (a
    // rarely chosen pool page can land once in 64 MiB), from few distinct contents …
    let repeated = 0;
    for (let n = 0; n < pages; n++) {
      if ((copies.get(hashes[n]!) ?? 0) < 2) continue;
      repeated++;
      expect(initPageKind(n, seed, init)).toBe('dup');
    }
    expect(repeated / pages).toBeGreaterThan(REALISTIC_MIX.dup - 0.03);
    expect(repeated / pages).toBeLessThan(REALISTIC_MIX.dup + 0.02);
    const dupContents = new Set(byKind.get('dup')!.map((n) => hashes[n]));
    expect(dupContents.size).toBeLessThan(byKind.get('dup')!.length / 3);
    const mostCopies = Math.max(...copies.values());
    expect(mostCopies).toBeGreaterThan(100); // a skewed popularity: one content at many addresses
    // … and compressibility: text and code shrink like text and heap/code, random not at all.
    const ratio = (kind: PageKind): number => {
      const sample = byKind.get(kind)!.slice(0, 400);
      const compressed = sample.reduce((sum, n) => sum + deflateSync(memory.page(n)).length, 0);
      return (sample.length * PAGE_SIZE) / compressed;
    };
    expect(ratio('text')).toBeGreaterThan(2.5);
    expect(ratio('text')).toBeLessThan(6);
    expect(ratio('code')).toBeGreaterThan(1.8);
    expect(ratio('code')).toBeLessThan(4.5);
    expect(ratio('dup')).toBeGreaterThan(1.5);
    for (const n of byKind.get('random')!.slice(0, 200)) {
      expect(deflateSync(memory.page(n)).length).toBeGreaterThanOrEqual(PAGE_SIZE);
    }
  });

  it('the popular half of the dup pool is the same in every VM (the guest image), the rest its own', async () => {
    const contents = async (seed: number): Promise<Set<string>> => {
      const memory = await build(16 * MiB, 'mixed:dup=1', seed);
      const set = new Set<string>();
      for (let n = 0; n < memory.pageCount; n++) set.add(sha256(memory.page(n)));
      return set;
    };
    const a = await contents(1);
    const b = await contents(2);
    const shared = [...a].filter((hash) => b.has(hash)).length;
    expect(shared).toBeGreaterThan(100);
    expect(shared).toBeLessThan(a.size);
  });

  it('a mix of zero pages only (within 1e-9) leaves memory zero and untouched', async () => {
    for (const init of ['mixed:zero=1', 'mixed:zero=0.9999999995']) {
      const memory = await build(MiB, init, 1);
      expect(memory.touched.count).toBe(0);
      for (let n = 0; n < memory.pageCount; n++) expect(initPageKind(n, 1, parseInitSpec(init))).toBe('zero');
    }
  });

  it('mixed:text=1 and mixed:code=1 have no two equal pages', async () => {
    for (const init of ['mixed:text=1', 'mixed:code=1']) {
      const memory = await build(8 * MiB, init, 5);
      const seen = new Set<string>();
      for (let n = 0; n < memory.pageCount; n++) seen.add(sha256(memory.page(n)));
      expect(seen.size).toBe(memory.pageCount);
      expect(memory.touched.count).toBe(memory.pageCount);
    }
  });
});
