/** Canonical JSON: one byte string per value (JCS for what livemig signs), refusals for the rest. */
import { describe, expect, it } from 'vitest';
import { MigrationError } from '@livemig/shared';
import { canonicalBytes, canonicalJson } from '@livemig/shared/security';

describe('canonicalJson', () => {
  it('sorts keys at every depth and writes no whitespace', () => {
    const value = { b: 1, a: { d: [3, { z: true, y: null }], c: 'x' } };
    expect(canonicalJson(value)).toBe('{"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}');
  });

  it('is the same for the same value whatever the key order it was built in', () => {
    expect(canonicalJson({ x: 1, y: [1, 2], z: 'é' })).toBe(canonicalJson({ z: 'é', y: [1, 2], x: 1 }));
  });

  it('writes strings and numbers as JSON.stringify (= RFC 8785 for these values)', () => {
    expect(canonicalJson({ s: 'a"\\\n\u0001€', n: [0.1, -0, 1e21, 255] })).toBe(
      '{"n":[0.1,0,1e+21,255],"s":"a\\"\\\\\\n\\u0001€"}',
    );
    // UTF-16 code unit order: upper case before lower case, "é" after ASCII.
    expect(canonicalJson({ é: 1, b: 2, B: 3 })).toBe('{"B":3,"b":2,"é":1}');
  });

  it('leaves out undefined properties (as JSON does) and takes null-prototype objects', () => {
    const bare = Object.assign(Object.create(null) as object, { k: 1 });
    expect(canonicalJson({ a: undefined, b: bare })).toBe('{"b":{"k":1}}');
  });

  it('refuses what JSON cannot carry exactly: non-finite numbers, undefined items, non-plain objects', () => {
    for (const bad of [NaN, Infinity, [undefined], new Date(0), new Uint8Array(2), new Map(), { f: () => 1 }]) {
      expect(() => canonicalJson(bad), String(bad)).toThrow(MigrationError);
    }
    expect(() => canonicalJson({ deep: [1, { n: NaN }] })).toThrow(/at \.deep\[1\]\.n/);
  });

  it('canonicalBytes is its UTF-8', () => {
    expect(canonicalBytes({ é: 'ü' }).toString('hex')).toBe(Buffer.from('{"é":"ü"}', 'utf8').toString('hex'));
  });
});
