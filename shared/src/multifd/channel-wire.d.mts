/** Types of channel-wire.mjs (plain JavaScript, so the channel workers run it without a loader). */

export declare const HEADER_BYTES: 14;
export declare const PROTOCOL_VERSION: 1;
export declare const PAGE_BYTES: 4096;
export declare const TYPE: Readonly<{ Pages: 5; RoundEnd: 6; Error: 16; Attach: 18 }>;
export declare const KIND_RAW: 0;
export declare const KIND_ZERO: 1;
export declare const MAX_META_BYTES: number;

/** Keep one 8-byte page hash as page `page`'s table entry and as entry `i` of a batch's content hashes. */
export declare function keepHash(
  from: Uint8Array,
  at: number,
  table: Uint8Array,
  page: number,
  content: Uint8Array,
  i: number,
): void;
/** An Error carrying a MigrationError code. */
export declare function coded(code: string, message: string): Error & { code: string };
/** Header and metadata of one frame, in one buffer. */
export declare function frameHead(type: number, meta: Record<string, unknown>, payloadLen: number): Buffer;
/** An Error frame. */
export declare function errorFrame(code: string, message: string): Buffer;
/** The checked header at the start of `bytes`. */
export declare function parseHeader(
  bytes: Uint8Array,
  maxMetaBytes: number,
): { type: number; metaLen: number; payloadLen: number };
/** One msgpack map filling `bytes` exactly. */
export declare function decodeMeta(bytes: Uint8Array): Record<string, unknown>;
export declare function uintField(value: unknown, field: string, max?: number): number;
export declare function bytesField(value: unknown, field: string, length?: number): Uint8Array;
export declare function stringField(value: unknown, field: string, max?: number): string;

/** Where a frame's payload goes. */
export interface PayloadSink {
  target(): Uint8Array;
  advance(n: number): void;
  end(): void;
}

export interface FrameHandler {
  frame(type: number, meta: Record<string, unknown>, payloadLen: number): PayloadSink | undefined;
  end(type: number, meta: Record<string, unknown>): void;
}

/** A frame stream parser (see channel-wire.mjs). */
export declare class FrameParser {
  inFrame: boolean;
  constructor(handler: FrameHandler, maxMetaBytes?: number);
  target(): Uint8Array;
  advance(n: number): void;
  feed(chunk: Uint8Array): void;
}
