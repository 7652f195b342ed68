/**
 * The page encodings in the prediction model (shared/src/predict/encodings.ts and their use in
 * model.ts), against the formulas of encodings.ts's header:
 *
 *   page rate = min(codec speed × threads, bandwidth ÷ ratio)
 *   compress auto: the best level, used when it beats the link by COMPRESS_GAIN (1.15)
 *   dedup: round 0's duplicates go as references; xbzrle: re-sent pages as deltas of deltaRatio
 *
 * and no options at all giving exactly the model's raw figures.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  activeEncodings,
  COMPRESS_GAIN,
  compressedPageRate,
  DEFAULT_PAGE_FIGURES,
  pageFiguresFromReport,
  predict,
  sendCost,
  type DirtyCurve,
  type ModelInputs,
  type PageFigures,
  type TechniqueOptions,
} from '../../../../shared/src/predict/index.ts';
import type { EncodingsReport } from '../../../../shared/src/report/types.ts';

const MiB = 1024 ** 2;
const M = 256 * MiB;
const P = 4096;
const O = { setupMs: 100, switchoverMs: 20, tailMs: 30 };
const IDLE: DirtyCurve = { rateBps: 0, wssBytes: null };
/** A codec far faster than any link here, halving the pages. */
const HALF_FAST: PageFigures = {
  codecs: { lz4: { ratio: 0.5, bps: 1e12 } },
  dupFraction: 0,
  deltaRatio: 0.1,
  source: 'test',
};

function inputs(over: Partial<ModelInputs> = {}): ModelInputs {
  return {
    memoryBytes: M,
    pageSize: P,
    dirty: IDLE,
    link: { bandwidthBps: 100e6, rttMs: 1, source: 'test' },
    downtimeLimitMs: 300,
    maxRounds: 30,
    postcopyAfterRounds: null,
    overheads: O,
    ...over,
  };
}

describe('compressedPageRate: bandwidth ÷ ratio, capped by the codec × threads', () => {
  it('a ratio of 0.5 doubles the effective bandwidth while the codec keeps up', () => {
    expect(compressedPageRate({ ratio: 0.5, bps: 1e9 }, 1, 100e6)).toBeCloseTo(200e6, 3);
    expect(compressedPageRate({ ratio: 0.25, bps: 1e9 }, 1, 100e6)).toBeCloseTo(400e6, 3);
  });

  it('the codec caps it: then threads raise the cap, and the link no longer matters', () => {
    expect(compressedPageRate({ ratio: 0.5, bps: 300e6 }, 1, 400e6)).toBe(300e6);
    expect(compressedPageRate({ ratio: 0.5, bps: 300e6 }, 2, 400e6)).toBe(600e6);
    expect(compressedPageRate({ ratio: 0.5, bps: 300e6 }, 4, 400e6)).toBeCloseTo(800e6, 3);
  });

  it('is never above either bound (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.double({ min: 1e6, max: 1e10, noNaN: true }),
        fc.integer({ min: 1, max: 16 }),
        fc.double({ min: 1e5, max: 1e10, noNaN: true }),
        (ratio, bps, threads, link) => {
          const rate = compressedPageRate({ ratio, bps }, threads, link);
          expect(rate).toBeLessThanOrEqual(bps * threads * (1 + 1e-12));
          expect(rate).toBeLessThanOrEqual((link / ratio) * (1 + 1e-12));
          expect(rate).toBeGreaterThanOrEqual(Math.min(bps * threads, link / ratio) * (1 - 1e-12));
        },
      ),
    );
  });
});

describe('activeEncodings: what the engine would use on a link', () => {
  const pages = DEFAULT_PAGE_FIGURES;
  it('an asked-for codec is used whatever the link; off and absent use none', () => {
    expect(activeEncodings({ compress: 'lz4' }, pages, 10e9).codec).toBe('lz4');
    expect(activeEncodings({ compress: 'brotli' }, pages, 1e6).codec).toBe('brotli');
    expect(activeEncodings({ compress: 'off' }, pages, 1e6).codec).toBeNull();
    expect(activeEncodings({}, pages, 1e6).codec).toBeNull();
  });

  it('auto: none on a link faster than the codecs (loopback), the denser codec on a slow one, none for pages that do not shrink', () => {
    expect(activeEncodings({ compress: 'auto' }, pages, 2e9).codec).toBeNull();
    const wan = activeEncodings({ compress: 'auto' }, pages, 12.5e6);
    expect(wan.codec).toBe('brotli');
    expect(wan.pageRateBps).toBeGreaterThanOrEqual(COMPRESS_GAIN * 12.5e6);
    const random: PageFigures = {
      ...pages,
      codecs: { lz4: { ratio: 1, bps: 250e6 }, brotli: { ratio: 1, bps: 150e6 } },
    };
    expect(activeEncodings({ compress: 'auto' }, random, 12.5e6).codec).toBeNull();
  });

  it('auto: used only when the best level beats the link by COMPRESS_GAIN', () => {
    const only = (ratio: number): PageFigures => ({ ...pages, codecs: { lz4: { ratio, bps: 1e12 } } });
    // 1 ÷ 0.88 = 1.136× the link: short of 1.15×; 1 ÷ 0.85 = 1.18×: used.
    expect(activeEncodings({ compress: 'auto' }, only(0.88), 100e6).codec).toBeNull();
    expect(activeEncodings({ compress: 'auto' }, only(0.85), 100e6).codec).toBe('lz4');
  });

  it('xbzrle and dedup: on, off, and auto below 400 and 250 MB/s', () => {
    expect(activeEncodings({ xbzrle: 'on', dedup: 'on' }, pages, 10e9)).toMatchObject({ delta: true, dedup: true });
    expect(activeEncodings({ xbzrle: 'auto', dedup: 'auto' }, pages, 300e6)).toMatchObject({
      delta: true,
      dedup: false,
    });
    expect(activeEncodings({ xbzrle: 'auto', dedup: 'auto' }, pages, 100e6)).toMatchObject({
      delta: true,
      dedup: true,
    });
    expect(activeEncodings({ xbzrle: 'auto', dedup: 'auto' }, pages, 500e6)).toMatchObject({
      delta: false,
      dedup: false,
    });
    expect(activeEncodings({ xbzrle: 'off', dedup: 'off' }, pages, 1e6)).toMatchObject({ delta: false, dedup: false });
  });
});

describe('sendCost', () => {
  const none = activeEncodings(undefined, DEFAULT_PAGE_FIGURES, 100e6);
  it('without encodings: the raw formula, 8 bytes a page and a zero page, at the link rate', () => {
    const c = sendCost({ pageBytes: 1000 * P, zeroPages: 10, resend: false }, none, DEFAULT_PAGE_FIGURES, {}, P, 100e6);
    expect(c.wireBytes).toBeCloseTo(1000 * (P + 8) + 10 * 8, 6);
    expect(c.seconds).toBeCloseTo(c.wireBytes / 100e6, 12);
  });

  it('dedup: round 0 sends the duplicate share as references; a re-send does not', () => {
    const pages = { ...DEFAULT_PAGE_FIGURES, dupFraction: 0.25 };
    const active = activeEncodings({ dedup: 'on' }, pages, 100e6);
    const first = sendCost({ pageBytes: 1000 * P, zeroPages: 0, resend: false }, active, pages, {}, P, 100e6);
    expect(first.wireBytes).toBeCloseTo(1000 * 8 + 250 * 8 + 750 * P, 6);
    const again = sendCost({ pageBytes: 1000 * P, zeroPages: 0, resend: true }, active, pages, {}, P, 100e6);
    expect(again.wireBytes).toBeCloseTo(1000 * (P + 8), 6);
  });

  it('xbzrle: a re-send is deltas for what the cache holds, raw for the rest', () => {
    const pages = { ...DEFAULT_PAGE_FIGURES, deltaRatio: 0.1 };
    const options: TechniqueOptions = { xbzrle: 'on', xbzrleCacheBytes: 500 * P };
    const active = activeEncodings(options, pages, 100e6);
    const c = sendCost({ pageBytes: 1000 * P, zeroPages: 0, resend: true }, active, pages, options, P, 100e6);
    expect(c.wireBytes).toBeCloseTo(1000 * 8 + 500 * P * 0.1 + 500 * P, 6);
    const first = sendCost({ pageBytes: 1000 * P, zeroPages: 0, resend: false }, active, pages, options, P, 100e6);
    expect(first.wireBytes).toBeCloseTo(1000 * (P + 8), 6);
  });

  it('compression: the bytes times the ratio; the time the longer of the wire and the codec', () => {
    const slow: PageFigures = { ...HALF_FAST, codecs: { lz4: { ratio: 0.5, bps: 50e6 } } };
    const active = activeEncodings({ compress: 'lz4', compressThreads: 1 }, slow, 100e6);
    const c = sendCost(
      { pageBytes: 100 * MiB, zeroPages: 0, resend: false },
      active,
      slow,
      { compress: 'lz4', compressThreads: 1 },
      P,
      100e6,
    );
    expect(c.wireBytes).toBeCloseTo(50 * MiB + 25600 * 8, 3);
    // The codec (50 MB/s on its one thread) is slower than half the link: it sets the pace.
    expect(c.seconds).toBeCloseTo((100 * MiB) / 50e6, 9);
    // Threads not given: the engine grows to AUTO_COMPRESS_THREADS (two) where the codec is the
    // limit, on a link no faster than SECOND_THREAD_MAX_LINK_BPS (50 MB/s); on this 100 MB/s one, not.
    const send = { pageBytes: 100 * MiB, zeroPages: 0, resend: false };
    expect(sendCost(send, active, slow, { compress: 'lz4' }, P, 100e6).seconds).toBeCloseTo(c.seconds, 9);
    // At 40 MB/s two threads (100 MB/s of pages) outrun what the link takes: the link sets the
    // pace, where one thread (50 MB/s, 2.1 s) would have.
    const slowLink = activeEncodings({ compress: 'lz4' }, slow, 40e6);
    const grown = sendCost(send, slowLink, slow, { compress: 'lz4' }, P, 40e6);
    expect(grown.seconds).toBeCloseTo(grown.wireBytes / 40e6, 9);
    expect(grown.seconds).toBeLessThan((100 * MiB) / 50e6);
    const two = sendCost(
      { pageBytes: 100 * MiB, zeroPages: 0, resend: false },
      active,
      slow,
      { compress: 'lz4', compressThreads: 4 },
      P,
      100e6,
    );
    expect(two.seconds).toBeCloseTo(two.wireBytes / 100e6, 9);
  });
});

describe('the model with encodings', () => {
  it('no options, empty options and compress off predict exactly what the raw model does', () => {
    const hot: DirtyCurve = { rateBps: 40e6, wssBytes: 16 * MiB };
    for (const t of ['precopy', 'postcopy', 'hybrid'] as const) {
      const raw = predict(t, inputs({ dirty: hot }));
      expect(predict(t, inputs({ dirty: hot, options: {} }))).toStrictEqual(raw);
      const off = predict(t, inputs({ dirty: hot, options: { compress: 'off', xbzrle: 'off', dedup: 'off' } }));
      expect({ ...off, options: undefined, compression: undefined }).toStrictEqual({
        ...raw,
        options: undefined,
        compression: undefined,
      });
    }
  });

  it('compression at 0.5 with a fast codec: an idle pre-copy sends half the bytes in half the time', () => {
    const raw = predict('precopy', inputs());
    const lz4 = predict('precopy', inputs({ options: { compress: 'lz4' }, pages: HALF_FAST }));
    const fixed = O.setupMs + 1 + O.switchoverMs + 1.5 + O.tailMs;
    const rawRound = raw.totalMs - fixed;
    const lz4Round = lz4.totalMs - fixed;
    // Page payload halves; the 8 bytes a page of meta do not.
    const want = M * 0.5 + (M / P) * 8;
    expect(lz4.wireBytes).toBeCloseTo(want, 0);
    expect(lz4Round).toBeCloseTo((want / 100e6) * 1000, 6);
    expect(lz4Round / rawRound).toBeCloseTo(want / raw.wireBytes, 6);
    expect(lz4.compression).toEqual({ codec: 'lz4', pageRateBps: 200e6 });
    // A pure post-copy pushes raw pages: compression changes nothing there.
    const post = predict('postcopy', inputs({ options: { compress: 'lz4' }, pages: HALF_FAST }));
    expect(post.wireBytes).toBeCloseTo(predict('postcopy', inputs()).wireBytes, 6);
  });

  it('until the codec caps it: a codec slower than the link makes the migration slower than raw', () => {
    const slow: PageFigures = { ...HALF_FAST, codecs: { lz4: { ratio: 0.5, bps: 50e6 } } };
    const raw = predict('precopy', inputs());
    const lz4 = predict('precopy', inputs({ options: { compress: 'lz4', compressThreads: 1 }, pages: slow }));
    expect(lz4.wireBytes).toBeLessThan(raw.wireBytes);
    expect(lz4.totalMs).toBeGreaterThan(raw.totalMs);
    // auto would not have compressed there.
    expect(predict('precopy', inputs({ options: { compress: 'auto' }, pages: slow })).totalMs).toBeCloseTo(
      raw.totalMs,
      6,
    );
  });

  it('a hot set that does not converge raw converges when its pages compress (the resends shrink too)', () => {
    const hot: DirtyCurve = { rateBps: 300e6, wssBytes: 64 * MiB };
    const raw = predict('precopy', inputs({ dirty: hot }));
    expect(raw.switchover).not.toBe('converged');
    const lz4 = predict(
      'precopy',
      inputs({
        dirty: hot,
        options: { compress: 'lz4' },
        pages: { ...HALF_FAST, codecs: { lz4: { ratio: 0.2, bps: 1e12 } } },
      }),
    );
    expect(lz4.switchover).toBe('converged');
    expect(lz4.downtimeMs).toBeLessThan(raw.downtimeMs);
  });

  it('xbzrle cuts the bytes of a hot set’s resends; dedup cuts round 0', () => {
    const hot: DirtyCurve = { rateBps: 40e6, wssBytes: 16 * MiB };
    const raw = predict('precopy', inputs({ dirty: hot }));
    const delta = predict('precopy', inputs({ dirty: hot, options: { xbzrle: 'on' }, pages: HALF_FAST }));
    expect(delta.wireBytes).toBeLessThan(raw.wireBytes);
    expect(delta.downtimeMs).toBeLessThanOrEqual(raw.downtimeMs);
    const dups = predict('precopy', inputs({ options: { dedup: 'on' }, pages: { ...HALF_FAST, dupFraction: 0.3 } }));
    expect(dups.wireBytes).toBeCloseTo(M * 0.7 + (M / P) * 0.3 * 8 + (M / P) * 8, 0);
  });
});

describe('pageFiguresFromReport', () => {
  const report: EncodingsReport = {
    xbzrle: {
      mode: 'on',
      cacheBytes: 64 * MiB,
      cacheHits: 900,
      cacheMisses: 100,
      cacheOverflows: 0,
      pages: 800,
      bytes: 800 * 410,
      bytesSaved: 0,
    },
    dedup: { mode: 'on', pages: 100 },
    compression: {
      mode: 'lz4',
      threads: 2,
      pages: 600,
      inputBytes: 600 * P,
      outputBytes: 150 * P,
      incompressibleBlocks: 0,
      busyMs: [5, 5],
    },
    encodeMs: 3,
    decisions: [],
  };

  it('takes the ratio over every non-zero page sent, the speed from busy time, the dedup share and the delta size', () => {
    const f = pageFiguresFromReport(report, { nonZeroPages: 1000, pageSize: P });
    // 600 pages went to 150; 400 more went whole: (150 + 400) ÷ 1000.
    expect(f.codecs.lz4!.ratio).toBeCloseTo(0.55, 9);
    expect(f.codecs.lz4!.bps).toBeCloseTo((600 * P) / 0.01, 3);
    expect(f.codecs.brotli).toEqual(DEFAULT_PAGE_FIGURES.codecs.brotli);
    expect(f.dupFraction).toBeCloseTo(0.1, 9);
    expect(f.deltaRatio).toBeCloseTo(410 / P, 9);
  });

  it('falls back where the report measured nothing', () => {
    const f = pageFiguresFromReport(
      { ...report, xbzrle: null, dedup: null, compression: null },
      { nonZeroPages: 1000, pageSize: P },
    );
    expect(f).toMatchObject({ codecs: DEFAULT_PAGE_FIGURES.codecs, dupFraction: 0, deltaRatio: 0.1 });
  });
});
