/**
 * The dedup index: find() only ever names a page whose destination copy holds that content now,
 * whatever way each page got there (raw, delta, compressed, zero, itself a reference), through
 * re-sends with new content, forgets and LRU eviction; and pageHash is SHA-256 in base64url.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isMigrationError } from '../../../../shared/src/errors.ts';
import { DEFAULT_DEDUP_MAX_ENTRIES, DedupIndex, pageHash } from '../../../../shared/src/codec/dedup-index.ts';
import { PAGE, makePage, pageKind, sameBytes } from './arbitraries.ts';

describe('pageHash', () => {
  it('is SHA-256, base64url, 43 characters', () => {
    const page = makePage('text', 1);
    const expected = createHash('sha256').update(page).digest('base64url');
    expect(pageHash(page)).toBe(expected);
    expect(pageHash(page)).toHaveLength(43);
  });

  it('depends on the bytes only (not on the buffer: shared memory, offset) and tells pages apart', () => {
    const page = makePage('random', 2);
    const shared = new Uint8Array(new SharedArrayBuffer(PAGE + 8)).subarray(3, 3 + PAGE);
    shared.set(page);
    expect(pageHash(shared)).toBe(pageHash(page));
    const other = page.slice();
    other[PAGE - 1] = other[PAGE - 1]! ^ 1;
    expect(pageHash(other)).not.toBe(pageHash(page));
  });
});

describe('DedupIndex', () => {
  it('refuses a bound that is not a positive integer', () => {
    for (const maxEntries of [0, -1, 1.5, NaN]) {
      let code: string | undefined;
      try {
        new DedupIndex({ maxEntries });
      } catch (error) {
        code = isMigrationError(error) ? error.code : undefined;
      }
      expect(code).toBe('ERR_INVALID_ARGUMENT');
    }
    expect(new DedupIndex().maxEntries).toBe(DEFAULT_DEDUP_MAX_ENTRIES);
  });

  it('finds a reference to every kind of earlier page, and never to one whose content changed since', () => {
    const index = new DedupIndex();
    // Whatever encoding carried a page, the index is told what the destination now holds.
    const kinds = ['raw', 'delta', 'compressed', 'zero', 'reference'] as const;
    const contents = kinds.map((_, i) => (i === 3 ? new Uint8Array(PAGE) : makePage('text', 100 + i)));
    kinds.forEach((_, page) => index.sent(page, pageHash(contents[page]!)));
    kinds.forEach((_, page) => expect(index.find(pageHash(contents[page]!))).toBe(page));
    // Page 10 is sent as a reference to page 0 (raw): page 10 now holds that content too.
    expect(index.find(pageHash(contents[0]!))).toBe(0);
    index.sent(10, pageHash(contents[0]!));
    expect(index.find(pageHash(contents[0]!))).toBe(10);
    // Page 10 re-sent with new content: the old content is not found at page 10 any more.
    index.sent(10, pageHash(makePage('text', 999)));
    expect(index.find(pageHash(contents[0]!))).toBeUndefined(); // a missed chance (page 0 still has it), never a wrong one
    // Page 1 changed by a path that did not hash it: forget.
    index.forget(1);
    expect(index.find(pageHash(contents[1]!))).toBeUndefined();
    expect(index.find(pageHash(makePage('text', 999)))).toBe(10);
    expect(index.stats).toMatchObject({ entries: 4, evictions: 0 });
  });

  it('re-sending a page with the same content keeps it; with new content drops the old entry', () => {
    const index = new DedupIndex();
    const a = pageHash(makePage('text', 1));
    const b = pageHash(makePage('text', 2));
    index.sent(4, a);
    index.sent(4, a);
    expect(index.find(a)).toBe(4);
    expect(index.size).toBe(1);
    index.sent(4, b);
    expect(index.find(a)).toBeUndefined();
    expect(index.find(b)).toBe(4);
    expect(index.size).toBe(1);
  });

  it('evicts the least recently used content past maxEntries (a find refreshes)', () => {
    const index = new DedupIndex({ maxEntries: 2 });
    const [a, b, c] = [1, 2, 3].map((seed) => pageHash(makePage('text', seed))) as [string, string, string];
    index.sent(0, a);
    index.sent(1, b);
    expect(index.find(a)).toBe(0); // a is now the most recent
    index.sent(2, c); // evicts b
    expect(index.find(b)).toBeUndefined();
    expect(index.find(a)).toBe(0);
    expect(index.find(c)).toBe(2);
    expect(index.stats).toEqual({ entries: 2, lookups: 4, hits: 3, evictions: 1 });
    // The evicted page's later change must not disturb anything (its reverse entry went too).
    index.sent(1, a);
    expect(index.find(a)).toBe(1);
    expect(index.size).toBe(2);
    index.clear();
    expect(index.find(a)).toBeUndefined();
  });

  it('against a model of the destination: every page find() names holds exactly that content', () => {
    type Op = { kind: 'send'; page: number; content: number } | { kind: 'forget'; page: number };
    const PAGES = 8;
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({
          kind: fc.constant('send' as const),
          page: fc.nat({ max: PAGES - 1 }),
          content: fc.nat({ max: 5 }),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('forget' as const), page: fc.nat({ max: PAGES - 1 }) }) },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.array(pageKind, { minLength: 6, maxLength: 6 }),
        fc.array(op, { maxLength: 100 }),
        (maxEntries, kinds, ops) => {
          const contents = kinds.map((kind, i) => makePage(kind, i));
          const hashes = contents.map(pageHash);
          const index = new DedupIndex({ maxEntries });
          // What the destination holds per page: a content number, or -1 (unknown to the index).
          // Two kinds may give equal bytes (two zero pages): compare bytes, not numbers.
          const destination = new Map<number, number>();
          const holds = (page: number, content: number): boolean => {
            const held = destination.get(page);
            return held !== undefined && held >= 0 && sameBytes(contents[held]!, contents[content]!);
          };
          let references = 0;
          for (const o of ops) {
            if (o.kind === 'send') {
              const found = index.find(hashes[o.content]!);
              if (found !== undefined) {
                // Sent as a reference: the destination copies page `found`, which must hold it.
                expect(holds(found, o.content)).toBe(true);
                references++;
              }
              destination.set(o.page, o.content);
              index.sent(o.page, hashes[o.content]!);
            } else {
              destination.set(o.page, -1);
              index.forget(o.page);
            }
            expect(index.size).toBeLessThanOrEqual(maxEntries);
          }
          // Every remembered content is right.
          hashes.forEach((hash, content) => {
            const page = index.find(hash);
            if (page !== undefined) expect(holds(page, content)).toBe(true);
          });
          return references >= 0;
        },
      ),
      { numRuns: 500 },
    );
  });
});
