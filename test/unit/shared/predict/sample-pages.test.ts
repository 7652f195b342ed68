/**
 * The pages' figures measured on a VM's pages (shared/src/predict/sample-pages.ts), through the
 * real codecs: random pages do not compress (ratio 1: the engine skips them), text-like ones do,
 * zero pages are left out (they go as zero records), duplicates are counted once each; and the
 * pages of an --init are sampled as the VM has them.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import {
  codecFiguresOf,
  codecRatioOf,
  duplicateShare,
  samplePages,
  sampleCodecFigures,
} from '../../../../shared/src/predict/index.ts';
import { parseInitSpec } from '../../../../shared/src/vm/index.ts';

const P = 4096;
const random = (n: number) => Array.from({ length: n }, () => new Uint8Array(randomBytes(P)));
const zero = (n: number) => Array.from({ length: n }, () => new Uint8Array(P));
/** Log-like text: a few words in varying order, as a guest's page cache holds. */
const text = (n: number) =>
  Array.from({ length: n }, (_, i) => {
    const words = ['GET', '/index.html', '200', 'user', 'ok', 'time=', String(i), 'session', 'error', 'cache'];
    let s = '';
    for (let k = 0; s.length < P; k++) s += words[(k * 7 + i) % words.length]! + (k % 9 === 0 ? '\n' : ' ');
    return new Uint8Array(Buffer.from(s.slice(0, P)));
  });

describe('codecRatioOf', () => {
  it('random pages: 1 (they look random, so the engine sends them raw)', () => {
    for (const codec of ['lz4', 'brotli'] as const) {
      expect(codecRatioOf(random(64), codec)).toEqual({ ratio: 1, compressedInputBytes: 0 });
    }
  });

  it('text pages compress (brotli denser than lz4); zero pages are not counted', () => {
    const lz4 = codecRatioOf(text(300), 'lz4');
    const brotli = codecRatioOf(text(300), 'brotli');
    expect(lz4.ratio).toBeLessThan(0.5);
    expect(brotli.ratio).toBeLessThan(lz4.ratio);
    expect(lz4.compressedInputBytes).toBe(300 * P);
    expect(codecRatioOf([...text(300), ...zero(300)], 'lz4').ratio).toBeCloseTo(lz4.ratio, 2);
    expect(codecRatioOf(zero(10), 'lz4').ratio).toBe(1);
  });

  it('a mix: the ratio over all non-zero pages, random ones whole', () => {
    const t = text(128);
    const alone = codecRatioOf(t, 'lz4').ratio;
    const mixed = codecRatioOf([...t, ...random(128)], 'lz4').ratio;
    // Each batch of 256 holds 128 text and 128 random pages (in that order: one batch).
    expect(mixed).toBeCloseTo((alone + 1) / 2, 1);
  });
});

describe('duplicateShare', () => {
  it('counts pages whose content came before, over the non-zero pages', () => {
    const [a, b] = random(2);
    expect(duplicateShare([a!, b!, a!, new Uint8Array(a!), ...zero(5)])).toBe(0.5);
    expect(duplicateShare(random(10))).toBe(0);
    expect(duplicateShare(zero(3))).toBe(0);
  });
});

describe('samplePages and the figures of an --init', () => {
  it('random memory: incompressible, no duplicates', async () => {
    const pages = await samplePages(parseInitSpec('random'), 3, 1 << 20);
    expect(pages).toHaveLength(256);
    const f = codecFiguresOf(pages);
    expect(f.codecs.lz4!.ratio).toBe(1);
    expect(f.codecs.brotli!.ratio).toBe(1);
    expect(f.dupFraction).toBe(0);
  });

  it('realistic memory: the same pages for the same seed; compressible; duplicates from its library pool', async () => {
    const init = parseInitSpec('realistic');
    const pages = await samplePages(init, 7, 4 << 20);
    const again = await samplePages(init, 7, 4 << 20);
    expect(pages.map((p) => Buffer.from(p).toString('base64'))).toEqual(
      again.map((p) => Buffer.from(p).toString('base64')),
    );
    const zeros = pages.filter((p) => p.every((b) => b === 0)).length / pages.length;
    expect(zeros).toBeGreaterThan(0.2);
    expect(zeros).toBeLessThan(0.4);
    const f = sampleCodecFigures(pages, 'test');
    expect(f.codecs.lz4!.ratio).toBeLessThan(0.8);
    expect(f.codecs.brotli!.ratio).toBeLessThan(f.codecs.lz4!.ratio);
    expect(f.codecs.lz4!.bps).toBeGreaterThan(0);
    expect(f.dupFraction).toBeGreaterThan(0);
    expect(f.source).toBe('test');
  });
});
