// The wire of a multifd channel (issue 18), in plain JavaScript so that the channel workers
// (source-channel-worker.mjs, dest-channel-worker.mjs) run it without a TypeScript loader and
// start in milliseconds. It is the livemig frame format (shared/src/protocol/frame.ts; ARCHITECTURE
// §3): a 14-byte header — "LM", version, type, flags u16, metaLen u32, payloadLen u32, little-endian
// — then msgpack-lite metadata (one map), then raw bytes; page bytes never go through msgpack.
// A channel carries four message types, with the numbers and fields of the main protocol:
//
//   S→D  Attach    { migrationId, channel: 'multifd', index, token }      first frame, no payload
//   D→S  Attach    { migrationId, channel: 'multifd', index }             the channel is accepted
//   S→D  Pages     { round, requestId: 0, pages: u32 LE bin, kinds: u8 bin } payload: raw pages
//   S→D  RoundEnd  { round, pages, bytes, pagesHash: 8 bytes, contentHash: 8 bytes, stable }
//   both Error     { code, message }                                        then the sender closes
//
// Pages kinds are PageKind Raw (0: a page of bytes in the payload) and Zero (1: no bytes). The
// RoundEnd of a channel is its end-of-round marker (round-barrier.ts). Everything read is bounded
// before it is buffered: the metadata to maxMetaBytes, a Pages payload to its raw pages, every other
// payload to 0.
import msgpack from 'msgpack-lite';

export const HEADER_BYTES = 14;
export const PROTOCOL_VERSION = 1;
export const PAGE_BYTES = 4096;
export const TYPE = Object.freeze({ Pages: 5, RoundEnd: 6, Error: 16, Attach: 18 });
export const KIND_RAW = 0;
export const KIND_ZERO = 1;
/** Metadata of a 1024-page batch is ~5.2 KiB; nothing a channel sends needs more. */
export const MAX_META_BYTES = 16 * 1024;

const DECODE_CODEC = msgpack.createCodec({});

/**
 * Keep one page hash (8 bytes at `from[at..]`, as the page hasher gave it) twice: as page `page`'s
 * entry of the shared page-hash table (the digest) and as entry `i` of the batch's content hashes.
 */
export function keepHash(from, at, table, page, content, i) {
  for (let b = 0; b < 8; b++) {
    table[page * 8 + b] = from[at + b];
    content[i * 8 + b] = from[at + b];
  }
}

/** An Error with a MigrationError code (the main thread rebuilds a MigrationError from it). */
export function coded(code, message) {
  return Object.assign(new Error(message), { code });
}

/** Header and metadata of one frame, in one buffer (the payload is written after it, as views). */
export function frameHead(type, meta, payloadLen) {
  const body = msgpack.encode(meta);
  const head = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  head[0] = 0x4c;
  head[1] = 0x4d;
  head[2] = PROTOCOL_VERSION;
  head[3] = type;
  head.writeUInt16LE(0, 4);
  head.writeUInt32LE(body.length, 6);
  head.writeUInt32LE(payloadLen, 10);
  body.copy(head, HEADER_BYTES);
  return head;
}

/** An Error frame. */
export function errorFrame(code, message) {
  return frameHead(TYPE.Error, { code: String(code), message: String(message).slice(0, 1024) }, 0);
}

/** The header at the start of `bytes` (HEADER_BYTES of them), checked; throws a coded Error. */
export function parseHeader(bytes, maxMetaBytes) {
  if (bytes[0] !== 0x4c || bytes[1] !== 0x4d) {
    throw coded('ERR_BAD_MAGIC', `not a livemig frame (first bytes ${bytes[0]} ${bytes[1]})`);
  }
  if (bytes[2] !== PROTOCOL_VERSION)
    throw coded('ERR_PROTOCOL_VERSION', `frame version ${bytes[2]}, this channel speaks ${PROTOCOL_VERSION}`);
  const type = bytes[3];
  if (type !== TYPE.Pages && type !== TYPE.RoundEnd && type !== TYPE.Error && type !== TYPE.Attach) {
    throw coded('ERR_UNKNOWN_MESSAGE', `message type ${type} on a multifd channel`);
  }
  if ((bytes[4] | bytes[5]) !== 0) throw coded('ERR_BAD_METADATA', 'header flags set (none is defined)');
  const metaLen = bytes[6] | (bytes[7] << 8) | (bytes[8] << 16) | (bytes[9] * 0x1000000);
  const payloadLen = bytes[10] | (bytes[11] << 8) | (bytes[12] << 16) | (bytes[13] * 0x1000000);
  if (metaLen < 1 || metaLen > maxMetaBytes) {
    throw coded('ERR_FRAME_TOO_LARGE', `${metaLen} bytes of metadata (1..${maxMetaBytes} allowed)`);
  }
  return { type, metaLen, payloadLen };
}

/** One msgpack map filling `bytes` exactly (no extension types); throws ERR_BAD_METADATA. */
export function decodeMeta(bytes) {
  let value;
  let consumed;
  try {
    const decoder = msgpack.Decoder({ codec: DECODE_CODEC });
    decoder.write(bytes);
    value = decoder.fetch();
    consumed = decoder.offset;
  } catch (error) {
    throw coded('ERR_BAD_METADATA', `metadata is not valid msgpack (${error?.message ?? error})`);
  }
  if (consumed !== bytes.length) throw coded('ERR_BAD_METADATA', 'trailing bytes after the metadata');
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    throw coded('ERR_BAD_METADATA', 'metadata is not a map');
  }
  return value;
}

/** `value` if it is an integer in [0, max], else ERR_BAD_METADATA naming `field`. */
export function uintField(value, field, max = 0xffff_ffff) {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw coded('ERR_BAD_METADATA', `${field} must be an integer in [0, ${max}], got ${String(value).slice(0, 40)}`);
  }
  return value;
}

/** `value` if it is bytes (of `length`, when given), else ERR_BAD_METADATA naming `field`. */
export function bytesField(value, field, length) {
  if (!(value instanceof Uint8Array) || (length !== undefined && value.length !== length)) {
    throw coded('ERR_BAD_METADATA', `${field} must be ${length ?? 'some'} bytes`);
  }
  return value;
}

/** `value` if it is a string of at most `max` characters, else ERR_BAD_METADATA naming `field`. */
export function stringField(value, field, max = 256) {
  if (typeof value !== 'string' || value.length > max)
    throw coded('ERR_BAD_METADATA', `${field} must be a string of ≤ ${max} characters`);
  return value;
}

/**
 * A frame stream parser that never holds more than one frame's header and metadata: the bytes of a
 * payload go wherever `handler.frame` says (guest memory, for Pages). It works two ways with the same
 * state: `target()` is where the next bytes belong and `advance(n)` says n of them landed there (a
 * socket reading with `onread` reads straight into target(): header, then metadata, then each run of
 * pages, exactly, so no payload byte ever passes through a scratch buffer); `feed(chunk)` copies a
 * chunk through the same steps (a socket reading with 'data' events).
 *
 * handler.frame(type, meta, payloadLen) is called once a frame's metadata is decoded and returns
 * `undefined` (no payload) or a payload sink { target(): Uint8Array (≤ what is left), advance(n),
 * end() }. handler.end(type, meta) is called when the frame is complete.
 */
export class FrameParser {
  #scratch;
  #maxMeta;
  #handler;
  #state = 'header';
  #have = 0;
  #need = HEADER_BYTES;
  #header = undefined;
  #meta = undefined;
  #sink = undefined;
  /** True between a frame's first byte and its last (for the frame deadline). */
  inFrame = false;

  constructor(handler, maxMetaBytes = MAX_META_BYTES) {
    this.#handler = handler;
    this.#maxMeta = maxMetaBytes;
    this.#scratch = Buffer.allocUnsafe(HEADER_BYTES + maxMetaBytes);
  }

  target() {
    if (this.#state === 'payload') return this.#sink.target();
    const base = this.#state === 'header' ? 0 : HEADER_BYTES;
    return this.#scratch.subarray(base + this.#have, base + this.#need);
  }

  advance(n) {
    if (n <= 0) return;
    this.inFrame = true;
    if (this.#state === 'payload') {
      this.#sink.advance(n);
      this.#have += n;
      if (this.#have === this.#need) this.#finish();
      return;
    }
    this.#have += n;
    if (this.#have < this.#need) return;
    if (this.#state === 'header') {
      this.#header = parseHeader(this.#scratch, this.#maxMeta);
      this.#state = 'meta';
      this.#have = 0;
      this.#need = this.#header.metaLen;
      return;
    }
    const { type, metaLen, payloadLen } = this.#header;
    this.#meta = decodeMeta(this.#scratch.subarray(HEADER_BYTES, HEADER_BYTES + metaLen));
    this.#sink = this.#handler.frame(type, this.#meta, payloadLen);
    if (payloadLen === 0) return this.#finish();
    if (this.#sink === undefined) throw coded('ERR_BAD_PAYLOAD', `a ${payloadLen}-byte payload where none belongs`);
    this.#state = 'payload';
    this.#have = 0;
    this.#need = payloadLen;
  }

  feed(chunk) {
    for (let at = 0; at < chunk.length;) {
      const target = this.target();
      const n = Math.min(target.length, chunk.length - at);
      target.set(chunk.subarray(at, at + n));
      at += n;
      this.advance(n);
    }
  }

  #finish() {
    const { type } = this.#header;
    const meta = this.#meta;
    this.#sink?.end();
    this.#state = 'header';
    this.#have = 0;
    this.#need = HEADER_BYTES;
    this.#header = this.#meta = this.#sink = undefined;
    this.inFrame = false;
    this.#handler.end(type, meta);
  }
}
