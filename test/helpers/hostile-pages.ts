/**
 * What a hostile source can put in an encoded Pages batch (issue 17), for a test that stands in
 * the middle of a plaintext link (rewriting-relay.ts hands it each decoded message): rewrites of
 * one batch that keep its frame well formed — kinds, delta lengths, references and the block's
 * length still agree with the payload (page-encodings.ts), so the destination's decoder takes it
 * and only its page applier, decoding the pages, can find what is wrong. Each returns the
 * rewritten message, or undefined when the batch has nothing of that kind to rewrite.
 */
import { COMPRESSION_CODECS, compressSync } from '@livemig/shared/codec';
import { PageKind, pagesLayout, type PagesMsg } from '@livemig/shared/protocol';

/** The batch's payload cut into its parts: raw pages ‖ deltas ‖ compressed block. */
function payloadParts(message: PagesMsg, pageSize: number): { raw: Uint8Array; deltas: Uint8Array; block: Uint8Array } {
  const layout = pagesLayout(message, pageSize);
  const data = message.data ?? new Uint8Array(0);
  const deltasAt = layout.rawBytes;
  const blockAt = deltasAt + layout.deltaBytes;
  return {
    raw: data.subarray(0, deltasAt),
    deltas: data.subarray(deltasAt, blockAt),
    block: data.subarray(blockAt, blockAt + layout.zlen),
  };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * The batch's first non-empty delta made to overrun its page: its leading unchanged-run length
 * becomes ULEB128 `ff 7f` = 16383 bytes, past the end of any page of up to 16 KiB. Same length:
 * the frame still adds up. (A valid non-empty delta has at least 3 bytes: two lengths and a
 * changed byte.)
 */
export function overrunDelta(message: PagesMsg, pageSize: number): PagesMsg | undefined {
  const lengths = message.deltas;
  if (lengths === undefined) return undefined;
  const { raw, deltas, block } = payloadParts(message, pageSize);
  let at = 0;
  for (const length of lengths) {
    if (length >= 2) {
      const changed = Uint8Array.from(deltas);
      changed[at] = 0xff;
      changed[at + 1] = 0x7f;
      return { ...message, data: concat(raw, changed, block) };
    }
    at += length;
  }
  return undefined;
}

/** The batch's first dedup reference pointed at page `to` instead (the caller picks one the destination never got). */
export function redirectReference(message: PagesMsg, to: number): PagesMsg | undefined {
  if (message.refs === undefined || message.refs.length === 0) return undefined;
  const refs = Uint32Array.from(message.refs);
  refs[0] = to;
  return { ...message, refs };
}

/**
 * The batch's compressed block replaced by one that inflates to half the bytes its pages need.
 * For lz4 the block's length prefix still declares the full length (so the check of the prefix
 * passes, and it is the block itself that comes up short); zlen follows the new block.
 */
export function shortBlock(message: PagesMsg, pageSize: number): PagesMsg | undefined {
  if (message.zcodec === undefined || message.zlen === undefined) return undefined;
  const codec = COMPRESSION_CODECS[message.zcodec];
  if (codec === undefined) return undefined;
  const { raw, deltas } = payloadParts(message, pageSize);
  const compressed = message.kinds.filter((kind) => kind === PageKind.Compressed).length;
  const expected = compressed * pageSize;
  const block = Uint8Array.from(compressSync(new Uint8Array(expected / 2).fill(0x5a), codec));
  if (codec === 'lz4') new DataView(block.buffer).setUint32(0, expected, true);
  return { ...message, zlen: block.length, data: concat(raw, deltas, block) };
}
