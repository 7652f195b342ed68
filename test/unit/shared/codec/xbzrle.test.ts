/**
 * XBZRLE deltas: encode → decode gives the new page for any page and edit; identical pages give
 * the empty delta; the limit is honoured exactly; and hostile deltas (malformed, corrupted,
 * truncated, extended, random) never write outside the page: they throw ERR_BAD_ENCODING with the
 * page untouched, or (a structurally valid corruption, by design undetectable here) decode to
 * some page.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { XBZRLE_MAX_PAGE_BYTES, xbzrleDecode, xbzrleEncode } from '../../../../shared/src/codec/xbzrle.ts';
import { PAGE, anyEdit, anyPage, applyEdit, makePage, sameBytes, codeOf } from './arbitraries.ts';

/** The delta of `cur` against `old` with room to spare (never -1), as a fresh array. */
function encode(old: Uint8Array, cur: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 * old.length + 16);
  const length = xbzrleEncode(old, cur, out, out.length);
  expect(length).toBeGreaterThanOrEqual(0);
  return out.slice(0, length);
}

function decoded(old: Uint8Array, delta: Uint8Array): Uint8Array {
  const page = old.slice();
  xbzrleDecode(delta, page);
  return page;
}

/** Hand-built deltas: ULEB128 of each number in `parts`, arrays as raw bytes. */
function delta(...parts: (number | number[])[]): Uint8Array {
  const bytes: number[] = [];
  for (const part of parts) {
    if (Array.isArray(part)) bytes.push(...part);
    else {
      let v = part;
      do {
        const b = v & 0x7f;
        v >>>= 7;
        bytes.push(v ? b | 0x80 : b);
      } while (v);
    }
  }
  return Uint8Array.from(bytes);
}

describe('xbzrleEncode / xbzrleDecode round trip', () => {
  it('gives back the new page for any page and any edit (few words, scattered bytes, ranges, all, none)', () => {
    fc.assert(
      fc.property(anyPage, anyEdit, (old, edit) => {
        const cur = applyEdit(old, edit);
        const d = encode(old, cur);
        expect(sameBytes(decoded(old, d), cur)).toBe(true);
        if (edit.kind === 'identical') expect(d.length).toBe(0);
      }),
      { numRuns: 400 },
    );
  });

  it('returns -1 exactly when the delta would reach the limit, and otherwise the same delta', () => {
    fc.assert(
      fc.property(anyPage, anyEdit, fc.integer({ min: 0, max: PAGE }), (old, edit, limit) => {
        const cur = applyEdit(old, edit);
        const full = encode(old, cur);
        const out = new Uint8Array(PAGE);
        const length = xbzrleEncode(old, cur, out, limit);
        if (full.length >= limit) expect(length).toBe(-1);
        else {
          expect(length).toBe(full.length);
          expect(sameBytes(out.subarray(0, length), full)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('encodes unaligned and odd-length pages like aligned ones', () => {
    fc.assert(
      fc.property(
        anyPage,
        anyEdit,
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 64 }),
        (old, edit, shift, cut) => {
          const cur = applyEdit(old, edit);
          const aligned = encode(old, cur);
          const o = new Uint8Array(PAGE + 8).subarray(shift, shift + PAGE);
          const c = new Uint8Array(PAGE + 8).subarray(3, 3 + PAGE);
          o.set(old);
          c.set(cur);
          expect(sameBytes(encode(o, c), aligned)).toBe(true);
          // An odd length: a page cut short still round-trips.
          const n = PAGE - cut;
          expect(
            sameBytes(decoded(old.subarray(0, n), encode(old.subarray(0, n), cur.subarray(0, n))), cur.subarray(0, n)),
          ).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('writes the format of the file header: lengths, then the new bytes; nothing for the unchanged tail', () => {
    const old = new Uint8Array(PAGE);
    const cur = old.slice();
    cur.set([1, 2, 3, 4], 10); // one word's worth, not word-aligned: spans words 2 and 3
    cur[200] = 9; // a second run, 186 bytes later: a 2-byte length
    const d = encode(old, cur);
    expect([...d]).toEqual([10, 4, 1, 2, 3, 4, 0xba, 0x01, 1, 9]);
    // Only the first unchanged run may be empty: a change at byte 0.
    const first = old.slice();
    first[0] = 7;
    expect([...encode(old, first)]).toEqual([0, 1, 7]);
    // A change in the last byte: no trailing unchanged length.
    const last = old.slice();
    last[PAGE - 1] = 7;
    expect([...encode(old, last)]).toEqual([0xff, 0x1f, 1, 7]);
  });

  it('keeps equal bytes inside a changed word in the run (so runs are at least a word apart)', () => {
    const old = new Uint8Array(PAGE);
    const cur = old.slice();
    cur[0] = 1;
    cur[3] = 1; // bytes 1 and 2 unchanged, same word
    cur[5] = 1; // next word
    expect([...encode(old, cur)]).toEqual([0, 6, 1, 0, 0, 1, 0, 1]);
  });

  it('decodes byte-exact deltas as QEMU writes them (runs split at every equal byte)', () => {
    const old = makePage('text', 1);
    const cur = old.slice();
    cur[100] = cur[100]! ^ 1;
    cur[102] = cur[102]! ^ 1;
    const d = delta(100, 1, [cur[100]!], 1, 1, [cur[102]!]);
    expect(decoded(old, d)).toEqual(cur);
  });

  it('an empty delta changes nothing', () => {
    const old = makePage('random', 2);
    expect(decoded(old, new Uint8Array(0))).toEqual(old);
  });

  it('rejects caller errors with ERR_INVALID_ARGUMENT', () => {
    const page = new Uint8Array(PAGE);
    expect(codeOf(() => xbzrleEncode(page, new Uint8Array(PAGE - 4), new Uint8Array(PAGE)))).toBe(
      'ERR_INVALID_ARGUMENT',
    );
    expect(codeOf(() => xbzrleEncode(page, page, new Uint8Array(10), 11))).toBe('ERR_INVALID_ARGUMENT');
    expect(codeOf(() => xbzrleEncode(page, page, new Uint8Array(10), NaN))).toBe('ERR_INVALID_ARGUMENT');
    const huge = new Uint8Array(XBZRLE_MAX_PAGE_BYTES + 4);
    expect(codeOf(() => xbzrleEncode(huge, huge, new Uint8Array(10)))).toBe('ERR_INVALID_ARGUMENT');
    expect(codeOf(() => xbzrleDecode(new Uint8Array(0), huge))).toBe('ERR_INVALID_ARGUMENT');
  });
});

describe('xbzrleDecode of hostile deltas', () => {
  const cases: [string, Uint8Array][] = [
    ['an unchanged run past the page end', delta(PAGE, 1, [0])],
    ['a second run starting past the page end', delta(PAGE - 1, 1, [0], 1)],
    ['a changed run past the page end', delta(PAGE - 2, 3, [1, 2, 3])],
    ['a changed run longer than the delta', delta(0, 10, [1, 2, 3])],
    ['a truncated length (continuation bit, then nothing)', Uint8Array.from([0x80])],
    ['a truncated changed length', Uint8Array.from([0, 0x81])],
    ['a truncated 3-byte length', Uint8Array.from([0x80, 0x81])],
    ['an overlong length (0x80 0x00)', Uint8Array.from([0x85, 0x00, 1, 7])],
    ['an overlong 3-byte length (0x80 0x80 0x00)', Uint8Array.from([0x85, 0x80, 0x00, 1, 7])],
    ['a length over 3 bytes', Uint8Array.from([0x81, 0x80, 0x80, 0x00, 1, 7])],
    ['an empty changed run', delta(5, 0)],
    ['an empty unchanged run in the middle', delta(5, 1, [1], 0, 1, [2])],
    ['an unchanged run with no changed run after it (trailing bytes)', delta(5, 1, [1], 7)],
    ['an unchanged run alone', delta(5)],
  ];

  it.each(cases)('rejects %s with ERR_BAD_ENCODING and leaves the page untouched', (_what, bad) => {
    const old = makePage('text', 3);
    const page = old.slice();
    expect(codeOf(() => xbzrleDecode(bad, page))).toBe('ERR_BAD_ENCODING');
    expect(page).toEqual(old);
  });

  it('corrupted deltas (flips, truncation, extension, random bytes) never write outside the page', () => {
    const GUARD = 64;
    const corruption = fc.oneof(
      fc.record({
        kind: fc.constant('flip' as const),
        flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
      }),
      fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
      fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
      fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 300 }) }),
    );
    const outcomes = { rejected: 0, decoded: 0 };
    fc.assert(
      fc.property(anyPage, anyEdit, corruption, fc.integer({ min: 0, max: 3 }), (old, edit, c, shift) => {
        const cur = applyEdit(old, edit);
        let d = encode(old, cur);
        switch (c.kind) {
          case 'flip':
            if (d.length === 0) d = Uint8Array.from([0]);
            for (const [at, x] of c.flips) d[at % d.length] = d[at % d.length]! ^ x;
            break;
          case 'truncate':
            d = d.subarray(0, d.length === 0 ? 0 : c.keep % d.length);
            break;
          case 'extend':
            d = Uint8Array.from([...d, ...c.extra]);
            break;
          case 'random':
            d = c.bytes;
            break;
        }
        // The page inside a larger buffer, guard bytes on both sides (and unaligned at times).
        const buffer = new Uint8Array(GUARD + PAGE + GUARD + 3).fill(0xee);
        const page = buffer.subarray(GUARD + shift, GUARD + shift + PAGE);
        page.set(old);
        const code = codeOf(() => xbzrleDecode(d, page));
        const guardsIntact =
          buffer.subarray(0, GUARD + shift).every((b) => b === 0xee) &&
          buffer.subarray(GUARD + shift + PAGE).every((b) => b === 0xee);
        expect(guardsIntact).toBe(true);
        if (code !== undefined) {
          expect(code).toBe('ERR_BAD_ENCODING');
          expect(sameBytes(page, old)).toBe(true); // validated before any write
          outcomes.rejected++;
        } else outcomes.decoded++;
        // Else: a structurally valid delta decoded to some page. A flip inside a changed run's
        // bytes (or a length that still fits) is undetectable by design: the end-to-end digest
        // catches it.
      }),
      { numRuns: 1500 },
    );
    // Both outcomes happen: the property is not vacuous.
    expect(outcomes.rejected).toBeGreaterThan(100);
    expect(outcomes.decoded).toBeGreaterThan(100);
  });
});
