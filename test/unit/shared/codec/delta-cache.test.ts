/**
 * The delta cache: misses send a snapshot raw and keep it, hits send deltas the destination can
 * apply, overflows send raw and still update the cache; the counters mean what the file says;
 * and a small cache evicting all the time (plus pages that reach the destination by other paths)
 * still gives the destination exactly the source's pages through encode → decode.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_DELTA_CACHE_BYTES, DeltaCache, encodeWithCache } from '../../../../shared/src/codec/delta-cache.ts';
import { xbzrleDecode } from '../../../../shared/src/codec/xbzrle.ts';
import { PAGE, anyEdit, applyEdit, makePage, pageKind, sameBytes, type Edit, codeOf } from './arbitraries.ts';

describe('DeltaCache', () => {
  it('sizes itself in whole pages, at least one; 64 MiB by default', () => {
    expect(new DeltaCache().slots).toBe(DEFAULT_DELTA_CACHE_BYTES / PAGE);
    expect(new DeltaCache({ cacheBytes: 0 }).slots).toBe(1);
    expect(new DeltaCache({ cacheBytes: 3 * PAGE + 100 }).slots).toBe(3);
    expect(new DeltaCache({ cacheBytes: 10 * PAGE }).stats.cacheBytes).toBe(10 * PAGE);
  });

  it('refuses bad options and bad arguments', () => {
    expect(codeOf(() => new DeltaCache({ cacheBytes: -1 }))).toBe('ERR_INVALID_SIZE');
    expect(codeOf(() => new DeltaCache({ cacheBytes: Infinity }))).toBe('ERR_INVALID_SIZE');
    expect(codeOf(() => new DeltaCache({ pageSize: 1000.5 }))).toBe('ERR_INVALID_ARGUMENT');
    const cache = new DeltaCache({ cacheBytes: 4 * PAGE });
    const out = new Uint8Array(PAGE);
    expect(codeOf(() => cache.encode(-1, new Uint8Array(PAGE), out))).toBe('ERR_INVALID_ARGUMENT');
    expect(codeOf(() => cache.encode(1.5, new Uint8Array(PAGE), out))).toBe('ERR_INVALID_ARGUMENT');
    expect(codeOf(() => cache.encode(1, new Uint8Array(100), out))).toBe('ERR_INVALID_ARGUMENT');
    expect(codeOf(() => cache.store(1, new Uint8Array(100)))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('miss: raw, and the bytes to send are the cached snapshot, not the live page', () => {
    const cache = new DeltaCache({ cacheBytes: 4 * PAGE });
    const live = makePage('text', 1);
    const r = cache.encode(7, live, new Uint8Array(PAGE));
    expect(r.kind).toBe('raw');
    if (r.kind !== 'raw') return;
    expect(r.bytes).not.toBe(live);
    expect(sameBytes(r.bytes, live)).toBe(true);
    live[0] = live[0]! ^ 1; // the vCPU writes on: what was sent (and cached) stays
    expect(r.bytes[0]).toBe(live[0]! ^ 1);
    expect(sameBytes(cache.lookup(7)!, r.bytes)).toBe(true);
    expect(cache.stats).toMatchObject({
      cacheHits: 0,
      cacheMisses: 1,
      cacheOverflows: 0,
      pagesEncoded: 0,
      evictions: 0,
    });
  });

  it('hit: a delta the destination applies to its copy; the cache then holds the new version', () => {
    const cache = new DeltaCache({ cacheBytes: 4 * PAGE });
    const out = new Uint8Array(PAGE);
    const v1 = makePage('text', 2);
    cache.encode(3, v1, out);
    const destination = v1.slice();
    const v2 = v1.slice();
    v2.set([1, 2, 3, 4, 5, 6, 7, 8], 100);
    const r = cache.encode(3, v2, out);
    expect(r).toEqual({ kind: 'delta', length: 2 + 8 });
    if (r.kind !== 'delta') return;
    xbzrleDecode(out.subarray(0, r.length), destination);
    expect(sameBytes(destination, v2)).toBe(true);
    expect(sameBytes(cache.lookup(3)!, v2)).toBe(true);
    // Unchanged since: the empty delta, which saves the whole page.
    expect(encodeWithCache(cache, 3, v2, out)).toEqual({ kind: 'delta', length: 0 });
    expect(cache.stats).toMatchObject({
      cacheHits: 2,
      cacheMisses: 1,
      cacheMissRate: 1 / 3,
      cacheOverflows: 0,
      pagesEncoded: 2,
      encodedBytes: 10,
      bytesSaved: 2 * PAGE - 10,
      encodingRate: (2 * PAGE) / 10,
    });
  });

  it('overflow: a delta not smaller than the page goes raw, and the cache still moves to the new version', () => {
    const cache = new DeltaCache({ cacheBytes: 4 * PAGE });
    const out = new Uint8Array(PAGE);
    const v1 = makePage('random', 3);
    cache.encode(0, v1, out);
    const v2 = applyEdit(v1, { kind: 'all' });
    const r = cache.encode(0, v2, out);
    expect(r.kind).toBe('raw');
    if (r.kind === 'raw') expect(sameBytes(r.bytes, v2)).toBe(true);
    expect(sameBytes(cache.lookup(0)!, v2)).toBe(true);
    expect(cache.stats).toMatchObject({
      cacheHits: 1,
      cacheMisses: 1,
      cacheOverflows: 1,
      pagesEncoded: 0,
      bytesSaved: 0,
    });
    // A smaller limit makes a small delta overflow too.
    const v3 = v2.slice();
    v3[5] = v3[5]! ^ 1;
    expect(cache.encode(0, v3, out, 3).kind).toBe('raw');
    expect(cache.stats.cacheOverflows).toBe(2);
  });

  it('direct-mapped: a page evicts the one in its slot (page mod slots); invalidate and clear forget', () => {
    const cache = new DeltaCache({ cacheBytes: 4 * PAGE });
    const out = new Uint8Array(PAGE);
    cache.encode(1, makePage('text', 1), out);
    cache.encode(2, makePage('text', 2), out);
    cache.encode(5, makePage('text', 5), out); // slot 1: evicts page 1
    expect(cache.lookup(1)).toBeUndefined();
    expect(cache.lookup(5)).toBeDefined();
    expect(cache.lookup(2)).toBeDefined();
    expect(cache.stats.evictions).toBe(1);
    cache.encode(5, makePage('text', 5), out); // the same page again: a hit, no eviction
    expect(cache.stats).toMatchObject({ cacheHits: 1, evictions: 1 });
    cache.invalidate(2);
    expect(cache.lookup(2)).toBeUndefined();
    cache.invalidate(6); // slot 2 is empty now, page 6 is not there: nothing happens
    cache.store(9, makePage('zero', 0)); // slot 1 again: page 5 evicted by a store
    expect(cache.stats.evictions).toBe(2);
    expect(sameBytes(cache.lookup(9)!, new Uint8Array(PAGE))).toBe(true);
    cache.clear();
    expect(cache.lookup(9)).toBeUndefined();
    expect(cache.stats.cacheHits).toBe(1); // counters survive clear()
  });

  it('a small cache evicting all the time, and pages sent by other paths, still round-trip through encode → decode', () => {
    type Op =
      | { kind: 'send'; page: number; edit: Edit }
      | { kind: 'zero'; page: number; how: 'store' | 'invalidate' }
      | { kind: 'reference'; page: number; from: number; how: 'store' | 'invalidate' };
    const PAGES = 16;
    const page = fc.nat({ max: PAGES - 1 });
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('send' as const), page, edit: anyEdit }) },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('zero' as const),
          page,
          how: fc.constantFrom('store' as const, 'invalidate' as const),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('reference' as const),
          page,
          from: page,
          how: fc.constantFrom('store' as const, 'invalidate' as const),
        }),
      },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.tuple(pageKind, fc.integer()), { minLength: PAGES, maxLength: PAGES }),
        fc.array(op, { minLength: 1, maxLength: 80 }),
        (slots, initial, ops) => {
          const cache = new DeltaCache({ cacheBytes: slots * PAGE });
          const out = new Uint8Array(PAGE);
          const source = initial.map(([kind, seed]) => makePage(kind, seed));
          const destination = new Map<number, Uint8Array>();
          let sends = 0;
          for (const o of ops) {
            if (o.kind === 'send') {
              source[o.page] = applyEdit(source[o.page]!, o.edit);
              const r = cache.encode(o.page, source[o.page]!, out);
              sends++;
              if (r.kind === 'delta') {
                // A hit: the destination must hold the version the delta is against.
                const copy = destination.get(o.page);
                expect(copy).toBeDefined();
                xbzrleDecode(out.subarray(0, r.length), copy!);
              } else {
                destination.set(o.page, r.bytes.slice());
              }
              expect(sameBytes(destination.get(o.page)!, source[o.page]!)).toBe(true);
            } else {
              // The page reaches the destination without the cache: it must be told.
              const bytes = o.kind === 'zero' ? new Uint8Array(PAGE) : source[o.from]!.slice();
              source[o.page] = bytes.slice();
              destination.set(o.page, bytes.slice());
              if (o.how === 'store') cache.store(o.page, bytes);
              else cache.invalidate(o.page);
            }
          }
          const s = cache.stats;
          expect(s.cacheHits + s.cacheMisses).toBe(sends);
          expect(s.pagesEncoded).toBe(s.cacheHits - s.cacheOverflows);
          expect(s.bytesSaved).toBe(s.pagesEncoded * PAGE - s.encodedBytes);
        },
      ),
      { numRuns: 300 },
    );
  });
});
