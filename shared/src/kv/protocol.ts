/**
 * The wire format of the `kv` service that runs inside the toy VM (issue 7): one UDP datagram
 * per request and per reply, 16 bytes, little-endian, so the guest can parse it straight out of
 * its RX ring and the probe can match replies to requests by id.
 *
 *   request  | 'K' 'V' | op u8 | 0 u8     | id u32 | key u32 | value u32 |
 *   reply    | 'K' 'V' | op u8 | status u8 | id u32 | key u32 | value u32 |
 *
 * op: 1 GET, 2 PUT, 3 DEL. status: 0 OK, 1 NOT_FOUND, 2 FULL (a PUT of a new key whose bucket has
 * no room). A GET's reply carries the value; a PUT's echoes it; a DEL's carries the value it
 * removed. Anything that is not exactly this shape decodes to null (a datagram is never trusted).
 */

export const KV_MESSAGE_BYTES = 16;
const MAGIC_0 = 0x4b; // 'K'
const MAGIC_1 = 0x56; // 'V'
/** The magic bytes 'K' 'V' read as a little-endian u16 (the guest parses messages a word at a time). */
export const KV_MAGIC_U16LE = MAGIC_0 | (MAGIC_1 << 8);

export const KvOp = { Get: 1, Put: 2, Del: 3 } as const;
export type KvOp = (typeof KvOp)[keyof typeof KvOp];
export const KvStatus = { Ok: 0, NotFound: 1, Full: 2 } as const;
export type KvStatus = (typeof KvStatus)[keyof typeof KvStatus];

export interface KvRequest {
  op: KvOp;
  id: number;
  key: number;
  value: number;
}

export interface KvReply extends KvRequest {
  status: KvStatus;
}

function encode(op: number, status: number, id: number, key: number, value: number): Buffer {
  const b = Buffer.alloc(KV_MESSAGE_BYTES);
  b[0] = MAGIC_0;
  b[1] = MAGIC_1;
  b[2] = op;
  b[3] = status;
  b.writeUInt32LE(id >>> 0, 4);
  b.writeUInt32LE(key >>> 0, 8);
  b.writeUInt32LE(value >>> 0, 12);
  return b;
}

function decode(bytes: Uint8Array): { op: number; status: number; id: number; key: number; value: number } | null {
  if (bytes.length !== KV_MESSAGE_BYTES || bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1) return null;
  const op = bytes[2]!;
  if (op !== KvOp.Get && op !== KvOp.Put && op !== KvOp.Del) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    op,
    status: bytes[3]!,
    id: view.getUint32(4, true),
    key: view.getUint32(8, true),
    value: view.getUint32(12, true),
  };
}

export function encodeKvRequest(request: KvRequest): Buffer {
  return encode(request.op, 0, request.id, request.key, request.value);
}

export function decodeKvRequest(bytes: Uint8Array): KvRequest | null {
  const d = decode(bytes);
  return d && d.status === 0 ? { op: d.op as KvOp, id: d.id, key: d.key, value: d.value } : null;
}

export function encodeKvReply(reply: KvReply): Buffer {
  return encode(reply.op, reply.status, reply.id, reply.key, reply.value);
}

export function decodeKvReply(bytes: Uint8Array): KvReply | null {
  const d = decode(bytes);
  if (!d || (d.status !== KvStatus.Ok && d.status !== KvStatus.NotFound && d.status !== KvStatus.Full)) return null;
  return { op: d.op as KvOp, status: d.status as KvStatus, id: d.id, key: d.key, value: d.value };
}
