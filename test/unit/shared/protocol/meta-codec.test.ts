import { describe, expect, it } from 'vitest';
import { decodeMeta, encodeMeta } from '../../../../shared/src/protocol/index.ts';
import { codeOf } from './helpers.ts';

describe('meta codec', () => {
  it('round-trips a map with bin fields', () => {
    const back = decodeMeta(encodeMeta({ a: 1, b: 'x', c: Buffer.from([1, 2]) })) as Record<string, unknown>;
    expect(back.a).toBe(1);
    expect(back.b).toBe('x');
    expect([...(back.c as Uint8Array)]).toEqual([1, 2]);
  });

  it('does not revive msgpack-lite preset extension types (Error, RegExp, Date)', () => {
    // ext 0x0e = Error in msgpack-lite's preset codec
    const value = decodeMeta(Buffer.from([0xd4, 0x0e, 0xc0]));
    expect(value).not.toBeInstanceOf(Error);
  });

  it('ERR_BAD_METADATA: empty, invalid, truncated, trailing bytes, absurd nesting', () => {
    expect(codeOf(() => decodeMeta(new Uint8Array(0)))).toBe('ERR_BAD_METADATA');
    expect(codeOf(() => decodeMeta(Buffer.from([0xc1])))).toBe('ERR_BAD_METADATA');
    expect(codeOf(() => decodeMeta(Buffer.from([0xdc, 0xff, 0xff])))).toBe('ERR_BAD_METADATA');
    expect(codeOf(() => decodeMeta(Buffer.from([0x80, 0x01])))).toBe('ERR_BAD_METADATA');
    // 200k nested one-element arrays: msgpack-lite recurses; the stack overflow is contained
    expect(codeOf(() => decodeMeta(Buffer.alloc(200_000, 0x91)))).toBe('ERR_BAD_METADATA');
  });
});
