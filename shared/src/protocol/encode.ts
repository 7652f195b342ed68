/**
 * The pure frame encoder: message → buffers, no I/O. The result is meant for
 * `socket.cork(); write(b) for each b; socket.uncork()` (or `writev`), so nothing is concatenated
 * that does not have to be:
 *
 * - `encodeFrame(msg)` → `[header+meta]` or `[header+meta, payload]` (the payload is the
 *   message's own bytes, not copied);
 * - `encodePages(batch, views)` → `[header+meta, ...views]` where the views are `subarray`s of
 *   guest memory — page bytes are never copied on the sending side. Adjacent views of the same
 *   memory are merged into one, so a run of consecutive pages costs one iovec.
 */
import { MigrationError } from '../errors.ts';
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_PAGE_SIZE, HEADER_BYTES, MAX_FRAME_LIMIT, writeHeader } from './frame.ts';
import { encodeMeta } from './meta-codec.ts';
import { specOf } from './message-spec.ts';
import { pagesLayout } from './page-encodings.ts';
import { MsgType, PageKind, type Message } from './message-types.ts';
import { toWire, u32ToBytes } from './schema.ts';
import { PROTOCOL_VERSION } from './version.ts';

/** Encoder settings. */
export interface EncodeOptions {
  /** Version written into every header. @default PROTOCOL_VERSION */
  version?: number;
  /** Refuse to build a frame larger than this (the peer would reject it). @default 16 MiB */
  maxFrameBytes?: number;
  /** Page size of Pages batches. @default 4096 */
  pageSize?: number;
  /** Header flag bits (none is defined yet). @default 0 */
  flags?: number;
}

/** The fields of a page batch to encode with `encodePages`. */
export interface PagesBatch {
  round: number;
  /** @default 0 (unsolicited) */
  requestId?: number;
  pages: Uint32Array;
  /** One PageKind per page. */
  kinds: Uint8Array;
  /** Encoded pages (page-encodings.ts): Delta lengths, Dedup references, the compressed block's codec and length. */
  deltas?: Uint32Array;
  refs?: Uint32Array;
  zcodec?: number;
  zlen?: number;
}

const EMPTY = new Uint8Array(0);

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
}

function invalid(text: string): MigrationError {
  return new MigrationError('ERR_INVALID_ARGUMENT', text);
}

function headWithMeta(type: number, meta: Buffer, payloadLen: number, options: EncodeOptions | undefined): Buffer {
  const total = HEADER_BYTES + meta.length + payloadLen;
  const max = options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (total > max || total > MAX_FRAME_LIMIT) {
    throw new MigrationError('ERR_FRAME_TOO_LARGE', `a ${total}-byte frame exceeds the ${max}-byte limit`);
  }
  const head = Buffer.allocUnsafe(HEADER_BYTES + meta.length);
  writeHeader(head, 0, {
    version: options?.version ?? PROTOCOL_VERSION,
    type,
    flags: options?.flags ?? 0,
    metaLen: meta.length,
    payloadLen,
  });
  meta.copy(head, HEADER_BYTES);
  return head;
}

/**
 * Encode any message. Returns `[header+meta]`, or `[header+meta, payload]` when the message has
 * payload bytes (Pages `data`, CpuState `registers`, Setup `bitmap`). Throws
 * `ERR_FRAME_TOO_LARGE` or `ERR_INVALID_ARGUMENT` (unknown type, Pages bytes not matching kinds).
 */
export function encodeFrame(message: Message, options?: EncodeOptions): Uint8Array[] {
  const spec = specOf(message.type);
  if (spec === undefined) throw invalid(`cannot encode message type ${String(message.type)}`);
  const fields = message as unknown as Record<string, unknown>;
  const meta = encodeMeta(toWire(spec.schema, fields));
  let payload: Uint8Array | undefined;
  if (spec.payload.kind === 'bytes') {
    payload = fields[spec.payload.field] as Uint8Array | undefined;
    if (payload === undefined && !spec.payload.optional) throw invalid(`${spec.name} needs ${spec.payload.field}`);
  } else if (spec.payload.kind === 'pages' && message.type === MsgType.Pages) {
    const expected = pagesLayout(message, options?.pageSize ?? DEFAULT_PAGE_SIZE).payloadBytes;
    payload = message.data ?? new Uint8Array(0);
    if (payload.length !== expected) {
      throw invalid(`Pages: the batch's pages need ${expected} bytes of data, got ${payload.length}`);
    }
  }
  const payloadLen = payload?.length ?? 0;
  const head = headWithMeta(message.type, meta, payloadLen, options);
  return payloadLen > 0 ? [head, payload!] : [head];
}

/**
 * Encode a page batch whose payload is `views` (any split: one view per page, one per run of
 * pages, …): the raw pages' bytes in batch order, then any Delta encodings and compressed block
 * (page-encodings.ts). The views are returned as they are (merged where adjacent), never copied,
 * so they must stay unchanged until written.
 */
export function encodePages(batch: PagesBatch, views: readonly Uint8Array[], options?: EncodeOptions): Uint8Array[] {
  const requestId = batch.requestId ?? 0;
  if (!isU32(batch.round) || !isU32(requestId)) {
    throw invalid(`Pages: round ${batch.round} and requestId ${requestId} must be integers in [0, 2^32)`);
  }
  const expected = pagesLayout(batch, options?.pageSize ?? DEFAULT_PAGE_SIZE).payloadBytes;
  const out: Uint8Array[] = [EMPTY]; // out[0] becomes the head
  let total = 0;
  // The run of adjacent views being merged: [runStart, runEnd) of runView.buffer.
  let runView: Uint8Array | undefined;
  let runEnd = 0;
  let runCount = 0;
  const closeRun = (): void => {
    if (runView === undefined) return;
    out.push(
      runCount === 1 ? runView : new Uint8Array(runView.buffer, runView.byteOffset, runEnd - runView.byteOffset),
    );
  };
  for (let i = 0; i < views.length; i++) {
    const view = views[i]!;
    if (view.length === 0) continue;
    total += view.length;
    if (runView !== undefined && runView.buffer === view.buffer && runEnd === view.byteOffset) {
      runEnd += view.length;
      runCount++;
    } else {
      closeRun();
      runView = view;
      runEnd = view.byteOffset + view.length;
      runCount = 1;
    }
  }
  closeRun();
  if (total !== expected) throw invalid(`Pages: the batch's pages need ${expected} bytes, views hold ${total}`);
  const encoded =
    batch.deltas !== undefined || batch.refs !== undefined || batch.zcodec !== undefined || batch.zlen !== undefined;
  const meta = encoded
    ? encodeMeta(toWire(specOf(MsgType.Pages)!.schema, { ...batch, requestId }))
    : encodePagesMeta(batch);
  out[0] = headWithMeta(MsgType.Pages, meta, total, options);
  return out;
}

const KEY_ROUND = Buffer.from([0xa5, ...Buffer.from('round')]);
const KEY_REQUEST_ID = Buffer.from([0xa9, ...Buffer.from('requestId')]);
const KEY_PAGES = Buffer.from([0xa5, ...Buffer.from('pages')]);
const KEY_KINDS = Buffer.from([0xa5, ...Buffer.from('kinds')]);

/**
 * The Pages metadata as msgpack, written directly (it is on the hot path): the map
 * `{ round: u32, requestId: u32, pages: bin32, kinds: bin32 }` — exactly what msgpack-lite
 * produces for it, up to integer widths, and decoded by msgpack-lite on the other side.
 */
function encodePagesMeta(batch: PagesBatch): Buffer {
  const pages = u32ToBytes(batch.pages);
  const kinds = batch.kinds;
  const size =
    1 +
    (KEY_ROUND.length + 5) +
    (KEY_REQUEST_ID.length + 5) +
    (KEY_PAGES.length + 5 + pages.length) +
    (KEY_KINDS.length + 5 + kinds.length);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  out[at++] = 0x84; // fixmap of 4
  at += KEY_ROUND.copy(out, at);
  out[at++] = 0xce; // uint32
  at = out.writeUInt32BE(batch.round, at);
  at += KEY_REQUEST_ID.copy(out, at);
  out[at++] = 0xce;
  at = out.writeUInt32BE(batch.requestId ?? 0, at);
  at += KEY_PAGES.copy(out, at);
  out[at++] = 0xc6; // bin32
  at = out.writeUInt32BE(pages.length, at);
  at += pages.copy(out, at);
  at += KEY_KINDS.copy(out, at);
  out[at++] = 0xc6;
  at = out.writeUInt32BE(kinds.length, at);
  out.set(kinds, at);
  return out;
}

/**
 * Encode a page batch straight from guest memory: the raw pages' bytes are cut from `memory`
 * (page `p` at byte `(p - firstPage) × pageSize`), one view per run of consecutive page numbers
 * — no per-page views, no copies. For memory split into regions, give one region and its first
 * page (a batch must not leave the region: ERR_INVALID_ARGUMENT).
 */
export function encodePagesFrom(
  batch: PagesBatch,
  memory: Uint8Array,
  firstPage = 0,
  options?: EncodeOptions,
): Uint8Array[] {
  const pageSize = options?.pageSize ?? DEFAULT_PAGE_SIZE;
  const { pages, kinds } = batch;
  pagesLayout(batch, pageSize);
  const memoryPages = Math.floor(memory.length / pageSize);
  const views: Uint8Array[] = [];
  let runStart = -1; // first page of the current run (relative to firstPage)
  let runEnd = -1; // one past its last page
  for (let i = 0; i < pages.length; i++) {
    if (kinds[i] !== PageKind.Raw) continue;
    const p = pages[i]! - firstPage;
    if (p < 0 || p >= memoryPages) {
      throw invalid(
        `Pages: page ${pages[i]} is outside the given memory (pages ${firstPage}..${firstPage + memoryPages - 1})`,
      );
    }
    if (p === runEnd) {
      runEnd++;
    } else {
      if (runStart >= 0) views.push(memory.subarray(runStart * pageSize, runEnd * pageSize));
      runStart = p;
      runEnd = p + 1;
    }
  }
  if (runStart >= 0) views.push(memory.subarray(runStart * pageSize, runEnd * pageSize));
  return encodePages(batch, views, options);
}

/** Total bytes of an encoded frame. */
export function frameByteLength(buffers: readonly Uint8Array[]): number {
  let n = 0;
  for (const b of buffers) n += b.length;
  return n;
}

/** One contiguous copy of an encoded frame (tests, fixtures; not for the hot path). */
export function encodeFrameBytes(message: Message, options?: EncodeOptions): Buffer {
  return Buffer.concat(encodeFrame(message, options));
}
