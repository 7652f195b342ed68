import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeKvReply,
  decodeKvRequest,
  encodeKvReply,
  encodeKvRequest,
  KV_MESSAGE_BYTES,
  KvOp,
  KvStatus,
} from '@livemig/shared/kv';

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const op = fc.constantFrom(KvOp.Get, KvOp.Put, KvOp.Del);

describe('kv wire format', () => {
  it('requests and replies round-trip, 16 bytes each', () => {
    fc.assert(
      fc.property(op, u32, u32, u32, fc.constantFrom(KvStatus.Ok, KvStatus.NotFound), (o, id, key, value, status) => {
        const request = encodeKvRequest({ op: o, id, key, value });
        expect(request.length).toBe(KV_MESSAGE_BYTES);
        expect(decodeKvRequest(request)).toEqual({ op: o, id, key, value });
        expect(decodeKvReply(encodeKvReply({ op: o, status, id, key, value }))).toEqual({
          op: o,
          status,
          id,
          key,
          value,
        });
      }),
    );
  });

  it('anything else decodes to null, never throws', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const looksValid =
          bytes.length === 16 && bytes[0] === 0x4b && bytes[1] === 0x56 && [1, 2, 3].includes(bytes[2]!);
        if (!looksValid) {
          expect(decodeKvRequest(bytes)).toBeNull();
          expect(decodeKvReply(bytes)).toBeNull();
        }
      }),
    );
    expect(decodeKvReply(Buffer.from('KV\x09\x00............'))).toBeNull();
  });
});
