import { describe, expect, it } from 'vitest';
import { resolveEncodingParams } from '../../../agent-source/src/migration/encoding-params.ts';
import {
  chooseEncodings,
  CODEC_PRIORS,
  DEFAULT_ENCODING_PARAMS,
  type EncodingParams,
  type PolicyInput,
} from '../../../agent-source/src/migration/sections/ram/encoding-policy.ts';

const AUTO: EncodingParams = { ...DEFAULT_ENCODING_PARAMS, delta: 'auto', dedup: 'auto', compress: 'auto' };
const input = (over: Partial<PolicyInput>): PolicyInput => ({
  params: AUTO,
  linkBps: null,
  codecs: CODEC_PRIORS,
  round: 1,
  fitsCache: false,
  ...over,
});

describe('chooseEncodings', () => {
  it('uses nothing in auto until the link is measured', () => {
    expect(chooseEncodings(input({}))).toMatchObject({ delta: false, dedup: false, compress: null });
  });

  it('costs nothing on a link faster than every codec (loopback): all off', () => {
    const c = chooseEncodings(input({ linkBps: 1.2e9 }));
    expect(c).toMatchObject({ delta: false, dedup: false, compress: null });
    expect(c.why).toContain('no compression');
  });

  it('on a slow link compresses with the codec that delivers the most pages, and deltas and references on', () => {
    // 12 MB/s (the lab's wan): brotli's better ratio wins over lz4's speed.
    const c = chooseEncodings(input({ linkBps: 12e6 }));
    expect(c).toMatchObject({ delta: true, dedup: true, compress: 'brotli' });
    // Where the CPU is the bottleneck (a fast link, a slow codec) the faster codec wins.
    const fast = chooseEncodings(
      input({ linkBps: 200e6, codecs: { lz4: { bps: 400e6, ratio: 0.5 }, brotli: { bps: 100e6, ratio: 0.3 } } }),
    );
    expect(fast.compress).toBe('lz4');
  });

  it('a codec measured delivering fewer pages than raw is not used, whatever the model says (a CPU-bound loopback)', () => {
    // The model says lz4 doubles a 100 MB/s "link"; measured, it delivered 80 MB/s of pages where raw did 100.
    const modelled = chooseEncodings(input({ linkBps: 100e6, delivered: { raw: 100e6 } }));
    expect(modelled.compress).not.toBeNull();
    const measured = chooseEncodings(input({ linkBps: 100e6, delivered: { raw: 100e6, lz4: 80e6, brotli: 60e6 } }));
    expect(measured.compress).toBeNull();
    // Measured better, it is kept.
    expect(chooseEncodings(input({ linkBps: 16e6, delivered: { raw: 16e6, brotli: 45e6 } })).compress).toBe('brotli');
  });

  it('stops compressing memory measured incompressible', () => {
    const c = chooseEncodings(
      input({ linkBps: 12e6, codecs: { lz4: { bps: 300e6, ratio: 1 }, brotli: { bps: 150e6, ratio: 1 } } }),
    );
    expect(c.compress).toBeNull();
  });

  it('deltas in round 0 only when the VM fits the cache (else nothing to delta against yet)', () => {
    expect(chooseEncodings(input({ linkBps: 12e6, round: 0 })).delta).toBe(false);
    expect(chooseEncodings(input({ linkBps: 12e6, round: 0, fitsCache: true })).delta).toBe(true);
  });

  it('on and a codec are used from the first batch, off never', () => {
    const on: EncodingParams = { ...AUTO, delta: 'on', dedup: 'on', compress: 'lz4' };
    expect(chooseEncodings(input({ params: on, linkBps: null, round: 0 }))).toMatchObject({
      delta: true,
      dedup: true,
      compress: 'lz4',
    });
    const off: EncodingParams = { ...AUTO, delta: 'off', dedup: 'off', compress: 'off' };
    expect(chooseEncodings(input({ params: off, linkBps: 1e6 }))).toMatchObject({
      delta: false,
      dedup: false,
      compress: null,
    });
  });
});

describe('resolveEncodingParams', () => {
  it('defaults: compression chosen from measurements, deltas and references off (as QEMU has xbzrle)', () => {
    expect(resolveEncodingParams({})).toEqual(DEFAULT_ENCODING_PARAMS);
    expect(DEFAULT_ENCODING_PARAMS).toMatchObject({ delta: 'off', dedup: 'off', compress: 'auto' });
  });

  it.each([
    [{ xbzrle: 'maybe' }, 'xbzrle must be one of auto, on, off'],
    [{ dedup: 'yes' }, 'dedup must be one of'],
    [{ compress: 'zstd' }, 'compress must be one of auto, off, lz4, brotli'],
    [{ xbzrle: 'on', xbzrleCacheBytes: 100 }, 'xbzrle-cache must be'],
    [{ xbzrleCacheBytes: 64 * 1024 * 1024 }, 'xbzrle-cache applies with xbzrle on or auto only'],
    [{ compressThreads: 0 }, 'compress-threads must be'],
    [{ compress: 'off', compressThreads: 2 }, 'compress-threads applies with compress on or auto only'],
  ])('%j is refused: %s', (knobs, message) => {
    expect(() => resolveEncodingParams(knobs as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining(message) }),
    );
  });
});
