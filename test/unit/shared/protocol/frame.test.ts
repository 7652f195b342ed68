import { describe, expect, it } from 'vitest';
import { HEADER_BYTES, HeaderOffset, MAGIC, readU32, writeHeader } from '../../../../shared/src/protocol/index.ts';

describe('frame header', () => {
  it('is 14 bytes: magic u16, version u8, type u8, flags u16, metaLen u32, payloadLen u32, little-endian', () => {
    expect(HEADER_BYTES).toBe(14);
    const b = new Uint8Array(HEADER_BYTES + 2);
    writeHeader(b, 2, { version: 1, type: 5, flags: 0x0201, metaLen: 0x01020304, payloadLen: 0xfffffffe });
    const v = Buffer.from(b.buffer, 2);
    expect(v.readUInt16LE(HeaderOffset.magic)).toBe(MAGIC);
    expect(v.toString('latin1', 0, 2)).toBe('LM');
    expect(v[HeaderOffset.version]).toBe(1);
    expect(v[HeaderOffset.type]).toBe(5);
    expect(v.readUInt16LE(HeaderOffset.flags)).toBe(0x0201);
    expect(v.readUInt32LE(HeaderOffset.metaLen)).toBe(0x01020304);
    expect(readU32(b, 2 + HeaderOffset.payloadLen)).toBe(0xfffffffe);
  });
});
