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
      fc.property(
        op,
        u32,
        u32,
        u32,
        fc.constantFrom(KvStatus.Ok, KvStatus.NotFound, KvStatus.Full),
        (o, id, key, value, status) => {
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
        },
      ),
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

  it('replies carry one of the three statuses; any other decodes to null', () => {
    const ok = encodeKvReply({ op: KvOp.Put, status: KvStatus.Full, id: 1, key: 2, value: 3 });
    expect(ok[3]).toBe(2);
    expect(decodeKvReply(ok)?.status).toBe(KvStatus.Full);
    for (const status of [3, 0x80, 0xff]) {
      const bad = Uint8Array.from(ok);
      bad[3] = status;
      expect(decodeKvReply(bad)).toBeNull();
    }
    // A request never carries a status.
    const request = Uint8Array.from(encodeKvRequest({ op: KvOp.Get, id: 1, key: 2, value: 0 }));
    request[3] = KvStatus.Full;
    expect(decodeKvRequest(request)).toBeNull();
  });
});
