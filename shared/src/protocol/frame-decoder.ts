/**
 * The streaming frame decoder: bytes in (any segmentation), messages out, no I/O.
 *
 * State machine, one frame at a time:
 *
 * ```
 *   'header' ──14 bytes──► parseHeader (header-parser.ts): magic, version, type, flags,
 *      ▲                        │ direction, lengths vs limits, payload rule (nothing of the
 *      │                        │ body is buffered before these checks pass)
 *      │                        ▼
 *      │                  'meta' ──metaLen bytes──► msgpack → schema → semantic checks
 *      │                        │
 *      │                        ▼
 *      └── message ◄──── 'payload' ──payloadLen bytes── (Pages + sink: streamed to the sink)
 * ```
 *
 * Ownership: the decoder never keeps a reference to a pushed chunk — the caller may reuse the
 * chunk's memory as soon as `push`/`feed` returns (FramedSocket reads every chunk into one reused
 * buffer). What must outlive the call is copied: a split header into a 14-byte scratch, the
 * metadata into its own buffer, small payloads (CpuState, Setup bitmap, Pages without a sink)
 * into a buffer of exactly `payloadLen`. With a PageSink (page-sink.ts), Pages bytes are not
 * copied here at all: each piece is handed to `sink.pageBytes` as a view of the chunk, valid only
 * during that call, so the receiver copies it once, straight into guest memory.
 *
 * Memory: at most one frame is buffered, and it is ≤ `maxFrameBytes` (checked from the header);
 * `bufferedBytes` says how much is held. Errors: every failure is a MigrationError with a stable
 * code; after one, the decoder is dead and rethrows it on every call (first error wins).
 */
import { MigrationError, toMigrationError } from '../errors.ts';
import {
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_META_BYTES,
  DEFAULT_PAGE_SIZE,
  HEADER_BYTES,
  MAX_FRAME_LIMIT,
} from './frame.ts';
import { parseHeader, type HeaderRules } from './header-parser.ts';
import { decodeMeta } from './meta-codec.ts';
import {
  DISK_BLOCK_BYTES,
  isPageSize,
  messageName,
  pageCountOf,
  type CheckContext,
  type MessageSpec,
} from './message-spec.ts';
import { MsgType, PageKind, type Message, type PagesMeta, type SetupMsg } from './message-types.ts';
import type { PageSink } from './page-sink.ts';
import { fromWire } from './schema.ts';
import { SUPPORTED_VERSIONS } from './version.ts';

/** Decoder settings; every limit is finite. */
export interface FrameDecoderOptions {
  /** Largest frame (header + meta + payload) accepted. @default 16 MiB */
  maxFrameBytes?: number;
  /** Largest metadata accepted. @default 1 MiB (must be ≤ maxFrameBytes) */
  maxMetaBytes?: number;
  /** Page size until a Setup (or setGeometry) says otherwise. @default 4096 */
  pageSize?: number;
  /** Page count for range checks; undefined = unchecked until a Setup arrives. @default undefined */
  pageCount?: number;
  /** Receives Pages bytes; without one, Pages frames are assembled into `data` (one copy). @default undefined */
  sink?: PageSink;
  /** Header versions accepted. @default SUPPORTED_VERSIONS */
  versions?: readonly number[];
  /**
   * This end's role: a message whose MESSAGE_SPEC direction does not lead here is rejected with
   * ERR_UNEXPECTED_MESSAGE. @default 'any' (no direction check)
   */
  role?: 'source' | 'dest' | 'any';
  /** Adopt page size and page count from each decoded Setup. @default true */
  trackSetup?: boolean;
}

type Resolved = Required<Omit<FrameDecoderOptions, 'sink' | 'pageCount'>>;

function invalidOption(text: string): MigrationError {
  return new MigrationError('ERR_INVALID_ARGUMENT', `FrameDecoder: ${text}`);
}

function resolveOptions(options: FrameDecoderOptions | undefined): Resolved {
  const r: Resolved = {
    maxFrameBytes: options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
    maxMetaBytes: options?.maxMetaBytes ?? Math.min(DEFAULT_MAX_META_BYTES, options?.maxFrameBytes ?? Infinity),
    pageSize: options?.pageSize ?? DEFAULT_PAGE_SIZE,
    versions: options?.versions ?? SUPPORTED_VERSIONS,
    role: options?.role ?? 'any',
    trackSetup: options?.trackSetup ?? true,
  };
  if (!Number.isInteger(r.maxFrameBytes) || r.maxFrameBytes < HEADER_BYTES + 1 || r.maxFrameBytes > MAX_FRAME_LIMIT) {
    throw invalidOption(`maxFrameBytes must be an integer in [${HEADER_BYTES + 1}, ${MAX_FRAME_LIMIT}]`);
  }
  if (!Number.isInteger(r.maxMetaBytes) || r.maxMetaBytes < 1 || r.maxMetaBytes > r.maxFrameBytes) {
    throw invalidOption('maxMetaBytes must be an integer in [1, maxFrameBytes]');
  }
  if (!isPageSize(r.pageSize)) throw invalidOption(`pageSize ${r.pageSize} is not a power of two in [512, 1 MiB]`);
  if (r.versions.length === 0) throw invalidOption('versions is empty');
  if (!['source', 'dest', 'any'].includes(r.role)) throw invalidOption(`role ${String(r.role)} is unknown`);
  return r;
}

/** The decoder's state: which part of a frame it is reading. */
export type DecoderState = 'header' | 'meta' | 'payload';

/** Streaming frame decoder; see the file comment. */
export class FrameDecoder {
  readonly #opts: Resolved;
  /** What parseHeader checks each header against (its pageSize follows setGeometry). */
  readonly #rules: HeaderRules;
  #sink: PageSink | undefined;
  #pageSize: number;
  #pageShift: number;
  #pageCount: number | undefined;
  #blockCount: number | undefined;

  #state: DecoderState = 'header';
  #failed: MigrationError | undefined;
  // header
  readonly #head = new Uint8Array(HEADER_BYTES);
  #headFill = 0;
  #type = 0;
  #payloadLen = 0;
  // meta
  #meta: Uint8Array | undefined;
  #metaFill = 0;
  // payload
  #spec: MessageSpec | undefined;
  #message: Message | undefined;
  #payload: Uint8Array | undefined;
  #payloadFill = 0;
  /** Pages streaming to the sink: batch index of each raw page, in payload order. */
  #rawIndex: Uint32Array | undefined;
  /** Per raw position j: the raw position where its run of contiguous pages ends (exclusive). */
  #runEnd: Uint32Array | undefined;
  /** The view handed out by readTarget, until consumedInPlace. */
  #inPlace: Uint8Array | undefined;
  #sinkMeta: PagesMeta | undefined;
  /** Pages streaming to the sink: bytes of raw pages at the payload's start (the rest is `#encoded`). */
  #rawBytes = 0;
  /** Pages streaming to the sink: the encoded pages' bytes (deltas, compressed block), buffered whole. */
  #encoded: Uint8Array | undefined;

  constructor(options?: FrameDecoderOptions) {
    this.#opts = resolveOptions(options);
    const { maxFrameBytes, maxMetaBytes, versions, role, pageSize } = this.#opts;
    this.#rules = { maxFrameBytes, maxMetaBytes, versions, role, pageSize };
    this.#sink = options?.sink;
    this.#pageSize = this.#opts.pageSize;
    this.#pageShift = Math.log2(this.#pageSize);
    this.#pageCount = undefined;
    if (options?.pageCount !== undefined) this.setGeometry({ pageSize: this.#pageSize, pageCount: options.pageCount });
  }

  /** Where the decoder is in the current frame. */
  get state(): DecoderState {
    return this.#state;
  }

  /** Bytes currently held for the frame in progress (≤ maxFrameBytes). */
  get bufferedBytes(): number {
    return this.#headFill + (this.#meta?.length ?? 0) + (this.#payload?.length ?? 0);
  }

  /** Current page size and page count (undefined = not range-checked). */
  get geometry(): { pageSize: number; pageCount: number | undefined } {
    return { pageSize: this.#pageSize, pageCount: this.#pageCount };
  }

  /** Bytes left in the current section (header, metadata or payload) of the frame being read. */
  get sectionRemaining(): number {
    if (this.#state === 'header') return HEADER_BYTES - this.#headFill;
    if (this.#state === 'meta') return (this.#meta?.length ?? 0) - this.#metaFill;
    return this.#payloadLen - this.#payloadFill;
  }

  /** The first error, once the decoder has failed. */
  get error(): MigrationError | undefined {
    return this.#failed;
  }

  /** Set the page size and page count used to check Pages frames (e.g. after Setup). */
  setGeometry(geometry: { pageSize: number; pageCount?: number | undefined }): void {
    if (!isPageSize(geometry.pageSize)) throw invalidOption(`pageSize ${geometry.pageSize} is invalid`);
    const count = geometry.pageCount;
    if (count !== undefined && (!Number.isInteger(count) || count < 0 || count > 0xffff_ffff)) {
      throw invalidOption(`pageCount ${count} is not an integer in [0, 2^32)`);
    }
    this.#pageSize = geometry.pageSize;
    this.#rules.pageSize = geometry.pageSize;
    this.#pageShift = Math.log2(geometry.pageSize);
    this.#pageCount = count;
  }

  /** Set the disk's block count used to check disk messages (e.g. after Setup); undefined = not range-checked. */
  setBlockCount(count: number | undefined): void {
    if (count !== undefined && (!Number.isInteger(count) || count < 1 || count > 0xffff_ffff)) {
      throw invalidOption(`blockCount ${count} is not an integer in [1, 2^32)`);
    }
    this.#blockCount = count;
  }

  /** Install or remove the PageSink (takes effect from the next Pages frame). */
  setSink(sink: PageSink | undefined): void {
    this.#sink = sink;
  }

  /**
   * Decode `chunk` (which may hold any part of any number of frames) and return the completed
   * messages. With a sink, its calls for a Pages frame happen during this call, before the
   * messages preceding that frame are returned; use `feed` where that order matters.
   */
  push(chunk: Uint8Array): Message[] {
    const out: Message[] = [];
    this.feed(chunk, (m) => out.push(m));
    return out;
  }

  /**
   * Decode `chunk[0, length)`, calling `onMessage` for each completed message synchronously, in
   * stream order with the sink's calls. An exception thrown by `onMessage` or the sink kills the
   * decoder like a decoding error (converted to a MigrationError, `ERR_INTERNAL` if it was not one).
   */
  feed(chunk: Uint8Array, onMessage: (message: Message) => void, length = chunk.length): void {
    if (this.#failed) throw this.#failed;
    this.#inPlace = undefined;
    try {
      this.#run(chunk, Math.min(length, chunk.length), onMessage);
    } catch (err) {
      this.#fail(toMigrationError(err));
    }
  }

  /**
   * Where the next bytes of the stream should be read so that they land in place: inside a
   * Pages payload whose sink offers `pageTarget`, a view of guest memory for the rest of the
   * current run of raw pages; inside a payload the decoder buffers whole (DiskBlocks' blocks,
   * …), the rest of that buffer — so a megabyte of blocks is not read into a scratch buffer and
   * copied again. Only when at least `minBytes` long; otherwise undefined (read into a scratch
   * buffer and `feed` it). After reading `n` bytes into the returned view, call
   * `consumedInPlace(n, onMessage)` before anything else.
   */
  readTarget(minBytes = 1): Uint8Array | undefined {
    this.#inPlace = undefined;
    if (this.#failed || this.#state !== 'payload') return undefined;
    const buffered = this.#payload;
    if (buffered !== undefined && !process.env.XNOINPLACE) {
      const rest = buffered.length - this.#payloadFill;
      if (rest < minBytes || rest === 0) return undefined;
      this.#inPlace = buffered.subarray(this.#payloadFill);
      return this.#inPlace;
    }
    const encoded = this.#encoded;
    if (this.#rawIndex !== undefined && encoded !== undefined && this.#payloadFill >= this.#rawBytes) {
      const rest = encoded.length - (this.#payloadFill - this.#rawBytes);
      if (rest < minBytes || rest === 0) return undefined;
      this.#inPlace = encoded.subarray(this.#payloadFill - this.#rawBytes);
      return this.#inPlace;
    }
    const sink = this.#sink;
    if (this.#rawIndex === undefined || !sink?.pageTarget) return undefined;
    const at = this.#payloadFill;
    const raw = at >>> this.#pageShift;
    const inPage = at & (this.#pageSize - 1);
    const available = this.#runEnd === undefined ? this.#pageSize - inPage : this.#runEnd[raw]! * this.#pageSize - at;
    if (available < minBytes) return undefined;
    const target = sink.pageTarget(this.#rawIndex[raw]!, inPage, available);
    if (target === undefined || target.length === 0 || target.length > available) return undefined;
    this.#inPlace = target;
    return target;
  }

  /** `n` bytes were read into the view `readTarget` returned (see there). */
  consumedInPlace(n: number, onMessage: (message: Message) => void): void {
    if (this.#failed) throw this.#failed;
    const target = this.#inPlace;
    this.#inPlace = undefined;
    try {
      if (target === undefined || !Number.isInteger(n) || n < 0 || n > target.length) {
        throw new MigrationError('ERR_INTERNAL', `consumedInPlace(${n}) without a matching readTarget`);
      }
      this.#payloadFill += n;
      if (this.#payloadFill === this.#payloadLen) this.#onPayloadDone(onMessage);
    } catch (err) {
      this.#fail(toMigrationError(err));
    }
  }

  /**
   * The stream ended. Throws `ERR_TRUNCATED` if it ended inside a frame; otherwise the decoder
   * stays usable (a later push starts a new frame).
   */
  end(): void {
    if (this.#failed) throw this.#failed;
    if (this.#state !== 'header' || this.#headFill > 0) {
      const where =
        this.#state === 'header'
          ? `after ${this.#headFill} of ${HEADER_BYTES} header bytes`
          : `in the ${this.#state} of a ${messageName(this.#type)} frame`;
      this.#fail(new MigrationError('ERR_TRUNCATED', `stream ended ${where}`));
    }
  }

  #fail(err: MigrationError): never {
    this.#failed = err;
    this.#meta = undefined;
    this.#payload = undefined;
    this.#message = undefined;
    this.#sinkMeta = undefined;
    this.#encoded = undefined;
    throw err;
  }

  #run(chunk: Uint8Array, end: number, onMessage: (message: Message) => void): void {
    let pos = 0;
    while (pos < end) {
      if (this.#state === 'header') {
        if (this.#headFill === 0 && end - pos >= HEADER_BYTES) {
          this.#onHeader(chunk, pos);
          pos += HEADER_BYTES;
        } else {
          const n = Math.min(HEADER_BYTES - this.#headFill, end - pos);
          this.#head.set(chunk.subarray(pos, pos + n), this.#headFill);
          this.#headFill += n;
          pos += n;
          if (this.#headFill === HEADER_BYTES) {
            this.#headFill = 0;
            this.#onHeader(this.#head, 0);
          }
        }
      } else if (this.#state === 'meta') {
        const meta = this.#meta!;
        const n = Math.min(meta.length - this.#metaFill, end - pos);
        meta.set(chunk.subarray(pos, pos + n), this.#metaFill);
        this.#metaFill += n;
        pos += n;
        if (this.#metaFill === meta.length) this.#onMeta(onMessage);
      } else {
        const n = Math.min(this.#payloadLen - this.#payloadFill, end - pos);
        if (this.#rawIndex !== undefined) this.#toSinkOrEncoded(chunk, pos, n);
        else this.#payload!.set(chunk.subarray(pos, pos + n), this.#payloadFill);
        this.#payloadFill += n;
        pos += n;
        if (this.#payloadFill === this.#payloadLen) this.#onPayloadDone(onMessage);
      }
    }
  }

  #onHeader(b: Uint8Array, at: number): void {
    // The caller has HEADER_BYTES bytes at `at`, so the result is never undefined.
    const { type, metaLen, payloadLen, spec } = parseHeader(b, at, this.#rules)!;
    this.#type = type;
    this.#spec = spec;
    this.#payloadLen = payloadLen;
    this.#meta = new Uint8Array(metaLen);
    this.#metaFill = 0;
    this.#state = 'meta';
  }

  #onMeta(onMessage: (message: Message) => void): void {
    const spec = this.#spec!;
    const raw = decodeMeta(this.#meta!);
    const message = fromWire(spec.schema, raw, '', { type: this.#type }) as unknown as Message;
    const ctx: CheckContext = {
      pageSize: this.#pageSize,
      pageCount: this.#pageCount,
      blockCount: this.#blockCount,
      payloadLen: this.#payloadLen,
    };
    spec.check?.(message, ctx);
    this.#meta = undefined;
    this.#message = message;
    if (message.type === MsgType.Pages && this.#sink !== undefined) {
      const meta: PagesMeta = message;
      let rawCount = 0;
      for (let i = 0; i < meta.kinds.length; i++) if (meta.kinds[i] === PageKind.Raw) rawCount++;
      const index = new Uint32Array(rawCount);
      let j = 0;
      for (let i = 0; i < meta.kinds.length; i++) if (meta.kinds[i] === PageKind.Raw) index[j++] = i;
      this.#rawIndex = index;
      // The spec's check made payloadLen = raw pages + deltas + block (page-encodings.ts).
      this.#rawBytes = rawCount << this.#pageShift;
      const encodedBytes = this.#payloadLen - this.#rawBytes;
      this.#encoded = encodedBytes > 0 ? new Uint8Array(encodedBytes) : undefined;
      this.#runEnd = runEnds(meta.pages, index, this.#sink.maxRunPages ?? 1);
      this.#sinkMeta = meta;
      this.#sink.pagesBegin(meta);
    } else if (this.#payloadLen > 0) {
      this.#payload = new Uint8Array(this.#payloadLen);
    }
    this.#payloadFill = 0;
    this.#state = 'payload';
    if (this.#payloadLen === 0) this.#onPayloadDone(onMessage);
  }

  /** Payload bytes of a Pages frame with a sink: raw pages to the sink, the encoded part to its buffer. */
  #toSinkOrEncoded(chunk: Uint8Array, pos: number, n: number): void {
    const toRaw = Math.max(0, Math.min(n, this.#rawBytes - this.#payloadFill));
    if (toRaw > 0) this.#toSink(chunk, pos, toRaw);
    if (toRaw < n) {
      const at = this.#payloadFill + toRaw - this.#rawBytes;
      this.#encoded!.set(chunk.subarray(pos + toRaw, pos + n), at);
    }
  }

  #toSink(chunk: Uint8Array, pos: number, n: number): void {
    const sink = this.#sink!;
    const index = this.#rawIndex!;
    const runEnd = this.#runEnd;
    const shift = this.#pageShift;
    const size = this.#pageSize;
    // A plain Uint8Array view: its subarray() is cheaper than Buffer's.
    const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset + pos, n);
    let at = this.#payloadFill;
    let off = 0;
    while (off < n) {
      const raw = at >>> shift;
      const inPage = at & (size - 1);
      const available = runEnd === undefined ? size - inPage : runEnd[raw]! * size - at;
      const take = Math.min(available, n - off);
      sink.pageBytes(index[raw]!, inPage, bytes.subarray(off, off + take));
      off += take;
      at += take;
    }
  }

  #onPayloadDone(onMessage: (message: Message) => void): void {
    const message = this.#message!;
    const spec = this.#spec!;
    const sinkMeta = this.#sinkMeta;
    this.#message = undefined;
    this.#spec = undefined;
    this.#state = 'header';
    if (sinkMeta !== undefined) {
      const encoded = this.#encoded;
      this.#rawIndex = undefined;
      this.#runEnd = undefined;
      this.#sinkMeta = undefined;
      this.#encoded = undefined;
      this.#sink!.pagesEnd(sinkMeta, encoded);
      return;
    }
    const fields = message as unknown as Record<string, unknown>;
    const payload = this.#payload;
    this.#payload = undefined;
    if (spec.payload.kind === 'bytes') {
      if (payload !== undefined) fields[spec.payload.field] = payload;
      else if (spec.payload.optional) delete fields[spec.payload.field];
    } else if (spec.payload.kind === 'pages') {
      fields.data = payload ?? new Uint8Array(0);
    }
    if (message.type === MsgType.Setup && this.#opts.trackSetup) this.#adoptSetup(message);
    onMessage(message);
  }

  #adoptSetup(setup: SetupMsg): void {
    this.setGeometry({ pageSize: setup.vm.pageSize, pageCount: pageCountOf(setup.vm) });
    this.setBlockCount(setup.disk ? setup.disk.sizeBytes / DISK_BLOCK_BYTES : undefined);
  }
}

/**
 * For each raw position j (payload order), where its run ends: raw positions j..end-1 hold pages
 * with consecutive numbers, not crossing a multiple of `maxRun`. Undefined when runs are off.
 */
function runEnds(pages: Uint32Array, rawIndex: Uint32Array, maxRun: number): Uint32Array | undefined {
  if (maxRun <= 1 || rawIndex.length === 0) return undefined;
  const ends = new Uint32Array(rawIndex.length);
  let end = rawIndex.length;
  ends[end - 1] = end;
  for (let j = rawIndex.length - 2; j >= 0; j--) {
    const next = pages[rawIndex[j + 1]!]!;
    if (next !== pages[rawIndex[j]!]! + 1 || next % maxRun === 0) end = j + 1;
    ends[j] = end;
  }
  return ends;
}

/**
 * Decode a complete byte string of whole frames (tests, fixtures). Throws `ERR_TRUNCATED` if it
 * ends inside a frame.
 */
export function decodeFrames(bytes: Uint8Array, options?: FrameDecoderOptions): Message[] {
  const decoder = new FrameDecoder(options);
  const out = decoder.push(bytes);
  decoder.end();
  return out;
}
