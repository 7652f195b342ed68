import { describe, expect, it } from 'vitest';
import {
  MAX_RECORD_DEPTH,
  fromWire,
  toWire,
  u32FromBytes,
  u32ToBytes,
  type ObjectSchema,
} from '../../../../shared/src/protocol/index.ts';
import { codeOf } from './helpers.ts';

const schema: ObjectSchema = {
  n: 'uint',
  w: 'uint32',
  x: 'number',
  s: 'string',
  list: 'uint32[]',
  names: 'string[]',
  pages: 'u32array',
  kinds: 'u8array',
  mode: { oneOf: ['a', 'b'] },
  nested: { fields: { k: 'string' } },
  state: 'record',
};

const value = {
  n: 2 ** 40,
  w: 7,
  x: 1.5,
  s: 'hi',
  list: [1, 2],
  names: ['p'],
  pages: new Uint32Array([1, 0xffff_ffff]),
  kinds: new Uint8Array([0, 1]),
  mode: 'b',
  nested: { k: 'v' },
  state: { a: [1, { b: null }], c: new Uint8Array([1]) },
};

describe('schema', () => {
  it('fromWire(toWire(v)) keeps every field; typed arrays become owned, aligned copies or views', () => {
    const back = fromWire(schema, toWire(schema, value));
    expect(back).toEqual(value);
    expect(back.pages).toBeInstanceOf(Uint32Array);
  });

  it('drops unknown keys and never reads inherited ones', () => {
    const wire = { ...toWire(schema, value), extra: 1 };
    expect(Object.keys(fromWire(schema, wire))).not.toContain('extra');
    const proto = Object.create({ k: 'inherited' }) as Record<string, unknown>;
    expect(codeOf(() => fromWire({ k: 'string' }, proto))).toBe('ERR_BAD_METADATA');
  });

  it('ERR_BAD_METADATA for each field type given the wrong value, naming the field', () => {
    const cases: [string, unknown][] = [
      ['n', -1],
      ['n', 1.5],
      ['w', 2 ** 32],
      ['x', Infinity],
      ['s', 5],
      ['list', [1, -1]],
      ['names', [1]],
      ['pages', Buffer.from([1, 2, 3])],
      ['kinds', [1]],
      ['mode', 'c'],
      ['nested', { k: 1 }],
      ['state', []],
    ];
    for (const [field, bad] of cases) {
      try {
        fromWire(schema, { ...toWire(schema, value), [field]: bad });
        expect.unreachable(`${field} accepted ${String(bad)}`);
      } catch (err) {
        expect((err as { code: string }).code).toBe('ERR_BAD_METADATA');
        expect((err as Error).message).toContain(field);
      }
    }
  });

  it(`ERR_BAD_METADATA for records nested deeper than ${MAX_RECORD_DEPTH} or holding non-plain values`, () => {
    let deep: unknown = 1;
    for (let i = 0; i < MAX_RECORD_DEPTH + 2; i++) deep = { d: deep };
    expect(codeOf(() => fromWire({ state: 'record' }, { state: deep }))).toBe('ERR_BAD_METADATA');
    expect(codeOf(() => fromWire({ state: 'record' }, { state: { f: () => 1 } }))).toBe('ERR_BAD_METADATA');
  });

  it('u32 arrays travel little-endian', () => {
    const bytes = u32ToBytes(new Uint32Array([0x01020304]));
    expect([...bytes]).toEqual([4, 3, 2, 1]);
    expect(u32FromBytes(Buffer.from([4, 3, 2, 1, 0, 0, 0, 1]).subarray(0, 8))).toEqual(
      new Uint32Array([0x01020304, 0x01000000]),
    );
    // unaligned input still works (copied)
    const unaligned = Buffer.from([9, 4, 3, 2, 1]).subarray(1);
    expect(u32FromBytes(unaligned)).toEqual(new Uint32Array([0x01020304]));
  });
});
