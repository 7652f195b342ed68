import { isMigrationError } from '../../../../shared/src/errors.ts';
/**
 * fast-check arbitraries for page codecs: pages of several characters (random, text-like,
 * zero, patterned) built from a seed (cheap to generate and to shrink), and edits as real
 * stores make them (a few words), scattered bytes, ranges, everything, or nothing.
 */
import fc from 'fast-check';

export const PAGE = 4096;

/** A small deterministic PRNG (xorshift32) so a page is a function of its seed. */
export function prng(seed: number): () => number {
  let s = seed | 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

export type PageKind = 'random' | 'text' | 'zero' | 'pattern';

const WORDS = [
  'the',
  'page',
  'migration',
  'of',
  'a',
  'guest',
  'memory',
  'is',
  'sent',
  'delta',
  '\n',
  'function',
  '{',
  '}',
];

/** Page bytes of the given kind from a seed. */
export function makePage(kind: PageKind, seed: number, length = PAGE): Uint8Array {
  const page = new Uint8Array(length);
  const next = prng(seed);
  if (kind === 'random') for (let i = 0; i < length; i++) page[i] = next() & 0xff;
  else if (kind === 'text') {
    let i = 0;
    while (i < length) {
      const word = WORDS[next() % WORDS.length]!;
      for (let k = 0; k < word.length && i < length; k++) page[i++] = word.charCodeAt(k);
      if (i < length) page[i++] = 0x20;
    }
  } else if (kind === 'pattern') {
    const period = 1 + (next() % 64);
    for (let i = 0; i < length; i++) page[i] = (i % period) * 7;
  }
  return page;
}

export const pageKind: fc.Arbitrary<PageKind> = fc.constantFrom('random', 'text', 'zero', 'pattern');

export const anyPage: fc.Arbitrary<Uint8Array> = fc
  .tuple(pageKind, fc.integer())
  .map(([kind, seed]) => makePage(kind, seed));

/** How a page changes between two sends. */
export type Edit =
  | { kind: 'identical' }
  | { kind: 'words'; writes: { offset: number; length: number; seed: number }[] }
  | { kind: 'bytes'; count: number; seed: number }
  | { kind: 'ranges'; ranges: { offset: number; length: number }[] }
  | { kind: 'all' };

export const anyEdit: fc.Arbitrary<Edit> = fc.oneof(
  fc.constant({ kind: 'identical' as const }),
  fc.record({
    kind: fc.constant('words' as const),
    writes: fc.array(
      fc.record({ offset: fc.nat({ max: PAGE - 1 }), length: fc.constantFrom(1, 2, 4, 8), seed: fc.integer() }),
      { minLength: 1, maxLength: 16 },
    ),
  }),
  fc.record({ kind: fc.constant('bytes' as const), count: fc.integer({ min: 1, max: 2000 }), seed: fc.integer() }),
  fc.record({
    kind: fc.constant('ranges' as const),
    ranges: fc.array(fc.record({ offset: fc.nat({ max: PAGE - 1 }), length: fc.integer({ min: 1, max: PAGE }) }), {
      minLength: 1,
      maxLength: 6,
    }),
  }),
  fc.constant({ kind: 'all' as const }),
);

/** A copy of `old` with `edit` applied (written values differ from the old ones where it says so). */
export function applyEdit(old: Uint8Array, edit: Edit): Uint8Array {
  const cur = old.slice();
  const n = cur.length;
  switch (edit.kind) {
    case 'identical':
      break;
    case 'words':
      for (const w of edit.writes) {
        const next = prng(w.seed);
        for (let k = 0; k < w.length && w.offset + k < n; k++) cur[w.offset + k] = next() & 0xff;
      }
      break;
    case 'bytes': {
      const next = prng(edit.seed);
      for (let k = 0; k < edit.count; k++) {
        const at = next() % n;
        cur[at] = cur[at]! ^ (1 + (next() % 255));
      }
      break;
    }
    case 'ranges':
      for (const r of edit.ranges)
        for (let i = r.offset; i < Math.min(n, r.offset + r.length); i++) cur[i] = cur[i]! ^ 0xa5;
      break;
    case 'all':
      for (let i = 0; i < n; i++) cur[i] = cur[i]! ^ 0xff;
      break;
  }
  return cur;
}

/** Byte equality of two arrays (fast; vitest's toEqual walks typed arrays element by element). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** The code of the MigrationError `fn` throws, or undefined when it throws nothing. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isMigrationError(error) ? error.code : `not a MigrationError: ${String(error)}`;
  }
  return undefined;
}
