/**
 * The page encodings end to end without sockets: the source's PageCodecs encodes rounds of a
 * changing memory (delta, dedup, compression switched on and off at random between batches, a
 * small cache that evicts, a small index), the frames are built by encodePages and read by a
 * FrameDecoder into the destination's PageApplier — and the destination's memory and digest are
 * the source's after every round. Then hostile batches: a corrupted delta, a reference to a page
 * the destination never got, an encoding not negotiated, a delta while the VM runs there.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { PageApplier } from '@livemig/shared/channel';
import {
  encodeMeta,
  encodePages,
  FrameDecoder,
  HEADER_BYTES,
  MsgType,
  PageKind,
  PROTOCOL_VERSION,
  specOf,
  toWire,
  writeHeader,
  type PagesBatch,
} from '@livemig/shared/protocol';
import { GuestMemory, PAGE_SIZE, PageDigestLedger } from '@livemig/shared/vm';
import { PageCodecs } from '../../../agent-source/src/migration/sections/ram/page-codecs.ts';
import { DEFAULT_ENCODING_PARAMS } from '../../../agent-source/src/migration/sections/ram/encoding-policy.ts';

/** Pages of the VM (the smallest memory, 1 MiB); the property writes the first USED of them. */
const PAGES = 256;
const USED = 96;
const BATCH = 24;

/** Page content drawn from a few kinds, as --init realistic has them. */
function fill(page: Uint8Array, kind: number, seed: number): void {
  if (kind === 0) page.fill(0);
  else if (kind === 1)
    page.fill(seed & 0xff); // the same content at many addresses
  else if (kind === 2)
    for (let i = 0; i < page.length; i++) page[i] = 97 + ((i * 7 + seed) % 13); // text-like
  else for (let i = 0; i < page.length; i++) page[i] = (Math.imul(i + 1, 2654435761 + seed) >>> 13) & 0xff;
}

interface Edit {
  page: number;
  /** 0: a few words changed; 1: whole page refilled (kind, seed); 2: copy of another page; 3: zeroed. */
  how: number;
  kind: number;
  seed: number;
  other: number;
}

const edit = fc.record({
  // Mostly a small hot set, so that pages are re-sent under different encodings round after round.
  page: fc.oneof({ arbitrary: fc.nat(15), weight: 3 }, { arbitrary: fc.nat(USED - 1), weight: 1 }),
  how: fc.nat(3),
  kind: fc.nat(3),
  seed: fc.nat(7), // few distinct contents: pages often equal one sent before
  other: fc.nat(USED - 1),
});
const choice = fc.oneof(
  fc.record({ delta: fc.boolean(), dedup: fc.boolean(), codec: fc.constantFrom(null, 'lz4', 'brotli') }),
  // Nothing engaged: the sender's zero-copy path, after which the cache and index must forget.
  fc.constant({ delta: false, dedup: false, codec: null }),
);

function apply(memory: GuestMemory, e: Edit): void {
  const page = memory.page(e.page);
  if (e.how === 0) for (let w = 0; w < 4; w++) page[(e.seed * 97 + w * 331) % PAGE_SIZE]! ^= 0x5a;
  else if (e.how === 1) fill(page, e.kind, e.seed);
  else if (e.how === 2) page.set(memory.page(e.other));
  else page.fill(0);
  memory.markTouched(e.page);
}

const pools: PageCodecs[] = [];
afterAll(async () => {
  await Promise.all(pools.map((c) => c.close()));
});

/** A source, a destination and the pipe between them. */
function pair(options: { cacheBytes: number; maxEntries: number }) {
  const source = GuestMemory.allocate(PAGES * PAGE_SIZE);
  const dest = GuestMemory.allocate(PAGES * PAGE_SIZE);
  const sent = new PageDigestLedger(PAGES);
  const applier = new PageApplier();
  applier.attach(dest);
  applier.encodings = { delta: true, dedup: true, compress: true };
  const decoder = new FrameDecoder({ sink: applier, pageCount: PAGES, role: 'dest' });
  const codecs = new PageCodecs({
    delta: { cacheBytes: options.cacheBytes },
    dedup: { maxEntries: options.maxEntries },
    compress: { codecs: ['lz4', 'brotli'], workers: 1 },
  });
  pools.push(codecs);
  const send = async (pages: number[], round: number): Promise<Record<number, number>> => {
    const kinds: Record<number, number> = {};
    for (let at = 0; at < pages.length; at += BATCH) {
      const batch = Uint32Array.from(pages.slice(at, at + BATCH));
      if (!codecs.engaged) {
        // As the sender does with nothing engaged: raw and zero pages, zero-copy, then sentPlain().
        const k = Uint8Array.from(batch, (page) => (source.isZeroPage(page) ? PageKind.Zero : PageKind.Raw));
        const views = [...batch].filter((_, i) => k[i] === PageKind.Raw).map((page) => source.page(page));
        batch.forEach((page, i) =>
          k[i] === PageKind.Raw ? sent.update(page, source.page(page)) : sent.updateZero(page),
        );
        for (const frame of encodePages({ round, pages: batch, kinds: k }, views)) decoder.push(frame);
        codecs.sentPlain(batch);
        for (const kind of k) kinds[kind] = (kinds[kind] ?? 0) + 1;
        continue;
      }
      const encoded = await codecs.encode(batch, source, {
        zeroPages: true,
        cacheNew: true,
        onPageSent: (page, bytes) => (bytes ? sent.update(page, bytes) : sent.updateZero(page)),
      });
      const { kinds: k, views, deltas, refs, zcodec, zlen } = encoded;
      const meta: PagesBatch = { round, pages: batch, kinds: k };
      if (deltas) meta.deltas = deltas;
      if (refs) meta.refs = refs;
      if (zcodec !== undefined) Object.assign(meta, { zcodec, zlen });
      for (const frame of encodePages(meta, views)) decoder.push(frame);
      for (const kind of k) kinds[kind] = (kinds[kind] ?? 0) + 1;
    }
    return kinds;
  };
  return { source, dest, sent, applier, codecs, send };
}

describe('page encodings, source to destination', () => {
  it('every round leaves the destination equal to the source, whatever the encodings chosen per round', async () => {
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat(3), { minLength: USED, maxLength: USED }),
        fc.array(fc.tuple(fc.array(edit, { maxLength: 40 }), choice), { minLength: 1, maxLength: 8 }),
        fc.constantFrom(8 * PAGE_SIZE, 64 * PAGE_SIZE),
        async (initial, rounds, cacheBytes) => {
          const p = pair({ cacheBytes, maxEntries: 16 });
          initial.forEach((kind, page) => {
            fill(p.source.page(page), kind, page % 5);
            if (kind !== 0) p.source.markTouched(page);
          });
          const all = Array.from({ length: USED }, (_, i) => i);
          p.codecs.use({ delta: false, dedup: true, compress: 'lz4' });
          await p.send(all, 0);
          for (let r = 0; r < rounds.length; r++) {
            const [edits, c] = rounds[r]!;
            for (const e of edits) apply(p.source, e);
            p.codecs.use({ delta: c.delta, dedup: c.dedup, compress: c.codec as 'lz4' | 'brotli' | null });
            const dirty = [...new Set(edits.map((e) => e.page))].sort((a, b) => a - b);
            const kinds = await p.send(dirty, r + 1);
            for (const k of Object.keys(kinds)) seen.add(Number(k));
          }
          for (let page = 0; page < PAGES; page++) {
            expect(Buffer.compare(p.dest.page(page), p.source.page(page)), `page ${page}`).toBe(0);
          }
          expect(p.applier.digest()).toBe(p.sent.digest());
        },
      ),
      { numRuns: 60 },
    );
    // The property exercised every kind, not only raw pages.
    expect([...seen].sort()).toEqual([
      PageKind.Raw,
      PageKind.Zero,
      PageKind.Delta,
      PageKind.Dedup,
      PageKind.Compressed,
    ]);
  }, 60_000);

  it('stops deltas and references once the destination runs; compression goes on', async () => {
    const p = pair({ cacheBytes: 64 * PAGE_SIZE, maxEntries: 64 });
    for (let page = 0; page < PAGES; page++) {
      fill(p.source.page(page), 1, 3);
      p.source.markTouched(page);
    }
    p.codecs.use({ delta: true, dedup: true, compress: 'lz4' });
    p.codecs.destinationRuns();
    expect(p.codecs.active).toEqual({ delta: false, dedup: false, compress: 'lz4' });
    p.codecs.use({ delta: true, dedup: true, compress: null });
    expect(p.codecs.active).toEqual({ delta: false, dedup: false, compress: null });
  });
  it('compression workers grow to what the policy asks, up to maxWorkers, never back; the report says how many', () => {
    const grows = new PageCodecs({
      delta: null,
      dedup: null,
      compress: { codecs: ['lz4'], workers: 1, maxWorkers: 2 },
    });
    const fixed = new PageCodecs({ delta: null, dedup: null, compress: { codecs: ['lz4'], workers: 1 } });
    pools.push(grows, fixed);
    const params = { ...DEFAULT_ENCODING_PARAMS };
    grows.use({ delta: false, dedup: false, compress: 'lz4', compressThreads: 3 });
    expect(grows.compressThreads).toBe(2);
    grows.use({ delta: false, dedup: false, compress: 'lz4', compressThreads: 1 });
    expect(grows.compressThreads).toBe(2);
    expect(grows.report(params, []).compression?.threads).toBe(2);
    fixed.use({ delta: false, dedup: false, compress: 'lz4', compressThreads: 2 });
    expect(fixed.compressThreads).toBe(1);
    // No compression chosen: no worker added, whatever the count says.
    const idle = new PageCodecs({ delta: null, dedup: null, compress: { codecs: ['lz4'], workers: 1, maxWorkers: 2 } });
    pools.push(idle);
    idle.use({ delta: false, dedup: false, compress: null, compressThreads: 2 });
    expect(idle.compressThreads).toBe(1);
  });

  it('compresses nothing once closed: no new pool (a thread nobody would end), ERR_CANCELLED instead', async () => {
    const p = pair({ cacheBytes: 64 * PAGE_SIZE, maxEntries: 64 });
    for (let page = 0; page < 4; page++) {
      fill(p.source.page(page), 1, 3);
      p.source.markTouched(page);
    }
    p.codecs.use({ delta: false, dedup: false, compress: 'brotli' });
    await p.codecs.close();
    const noop = { zeroPages: true, cacheNew: true, onPageSent: () => undefined };
    await expect(p.codecs.encode(Uint32Array.of(0, 1, 2, 3), p.source, noop)).rejects.toMatchObject({
      code: 'ERR_CANCELLED',
    });
    expect(p.codecs.poolStats).toBeUndefined();
  });
});

describe('hostile encoded batches at the destination', () => {
  function receiver(encodings = { delta: true, dedup: true, compress: true }) {
    const dest = GuestMemory.allocate(PAGES * PAGE_SIZE);
    const applier = new PageApplier();
    applier.attach(dest);
    applier.encodings = encodings;
    const decoder = new FrameDecoder({ sink: applier, pageCount: PAGES, role: 'dest' });
    const push = (batch: PagesBatch, views: Uint8Array[]): void => {
      for (const frame of encodePages(batch, views)) decoder.push(frame);
    };
    return { dest, applier, decoder, push };
  }
  const raw = (page: number): PagesBatch => ({
    round: 0,
    pages: Uint32Array.of(page),
    kinds: Uint8Array.of(PageKind.Raw),
  });

  it('a corrupted delta is refused with ERR_BAD_ENCODING and the page keeps its old bytes', () => {
    const r = receiver();
    r.push(raw(5), [new Uint8Array(PAGE_SIZE).fill(9)]);
    // A run that claims to go past the page's end.
    const delta = Uint8Array.of(0x80, 0x40, 0x10, 1, 2, 3);
    expect(() =>
      r.push({ round: 1, pages: Uint32Array.of(5), kinds: Uint8Array.of(PageKind.Delta), deltas: Uint32Array.of(6) }, [
        delta,
      ]),
    ).toThrow(expect.objectContaining({ code: 'ERR_BAD_ENCODING' }));
    expect(r.dest.page(5).every((b) => b === 9)).toBe(true);
  });

  it('a reference to a page the destination never received is refused', () => {
    const r = receiver();
    expect(() =>
      r.push({ round: 0, pages: Uint32Array.of(1), kinds: Uint8Array.of(PageKind.Dedup), refs: Uint32Array.of(7) }, []),
    ).toThrow(expect.objectContaining({ code: 'ERR_BAD_ENCODING', message: expect.stringContaining('never arrived') }));
  });

  it('a delta against a page never received is refused', () => {
    const r = receiver();
    expect(() =>
      r.push(
        { round: 1, pages: Uint32Array.of(2), kinds: Uint8Array.of(PageKind.Delta), deltas: Uint32Array.of(0) },
        [],
      ),
    ).toThrow(expect.objectContaining({ code: 'ERR_BAD_ENCODING' }));
  });

  it('an encoding the handshake did not negotiate is refused', () => {
    const r = receiver({ delta: false, dedup: false, compress: false });
    r.push(raw(3), [new Uint8Array(PAGE_SIZE).fill(1)]);
    expect(() =>
      r.push({ round: 0, pages: Uint32Array.of(4), kinds: Uint8Array.of(PageKind.Dedup), refs: Uint32Array.of(3) }, []),
    ).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_METADATA', message: expect.stringContaining('not negotiated') }),
    );
  });

  it('a delta or reference while the VM runs at the destination (post-copy) is refused', () => {
    const r = receiver();
    r.push(raw(3), [new Uint8Array(PAGE_SIZE).fill(1)]);
    r.applier.wanted = () => true;
    expect(() =>
      r.push({ round: 2, pages: Uint32Array.of(4), kinds: Uint8Array.of(PageKind.Dedup), refs: Uint32Array.of(3) }, []),
    ).toThrow(expect.objectContaining({ code: 'ERR_BAD_ENCODING', message: expect.stringContaining('post-copy') }));
  });

  /** A Pages frame written by hand (encodePages itself refuses such metadata): header, metadata, payload. */
  function handmade(fields: Record<string, unknown>, payloadLen: number): Uint8Array {
    const meta = encodeMeta(toWire(specOf(MsgType.Pages)!.schema, fields));
    const frame = new Uint8Array(HEADER_BYTES + meta.length + payloadLen);
    writeHeader(frame, 0, {
      version: PROTOCOL_VERSION,
      type: MsgType.Pages,
      flags: 0,
      metaLen: meta.length,
      payloadLen,
    });
    frame.set(meta, HEADER_BYTES);
    return frame;
  }

  it.each([
    [
      'a reference to a page of the same batch',
      { pages: Uint32Array.of(1, 2), kinds: Uint8Array.of(PageKind.Raw, PageKind.Dedup), refs: Uint32Array.of(1) },
      PAGE_SIZE,
      'same batch',
    ],
    [
      'a compressed block larger than its pages',
      { pages: Uint32Array.of(1), kinds: Uint8Array.of(PageKind.Compressed), zcodec: 0, zlen: PAGE_SIZE + 1 },
      PAGE_SIZE + 1,
      'compressed pages',
    ],
    [
      'a delta longer than a page',
      { pages: Uint32Array.of(1), kinds: Uint8Array.of(PageKind.Delta), deltas: Uint32Array.of(PAGE_SIZE + 8) },
      PAGE_SIZE + 8,
      'more than',
    ],
    [
      'more compressed pages than a block may inflate to (an allocation bomb)',
      {
        pages: Uint32Array.from({ length: 4097 }, (_, i) => i),
        kinds: new Uint8Array(4097).fill(PageKind.Compressed),
        zcodec: 1,
        zlen: 64,
      },
      64,
      'inflate past',
    ],
    [
      'delta pages without their lengths',
      { pages: Uint32Array.of(1), kinds: Uint8Array.of(PageKind.Delta) },
      0,
      'delta lengths',
    ],
  ])('%s is refused before any payload byte is buffered', (_what, fields, payloadLen, message) => {
    const r = receiver();
    const frame = handmade({ round: 0, requestId: 0, ...fields }, payloadLen);
    // Only the header and metadata: the payload never needs to arrive for the refusal.
    expect(() => r.decoder.push(frame.subarray(0, frame.length - payloadLen))).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_METADATA', message: expect.stringContaining(message) }),
    );
  });
});
