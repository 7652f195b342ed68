/**
 * How a Pages batch's payload is laid out once pages may be encoded (issue 17), and the checks
 * its metadata must pass before any byte of it is buffered (pure; the spec's check, the encoder,
 * the decoder and the destination's applier all use this one definition):
 *
 *     payload = raw pages (Raw: pageSize each, batch order)
 *             ‖ deltas     (Delta: deltas[k] bytes each, batch order)
 *             ‖ block      (Compressed: one block of zlen bytes → compressed × pageSize bytes)
 *
 * Zero and Dedup pages carry no bytes. The raw part comes first so that the destination still
 * reads raw pages straight into guest memory; the encoded part (at most a frame) is buffered.
 *
 * Rules a hostile peer is held to: one kind per page, every kind known; `deltas` exactly when
 * there are Delta pages, one length per Delta page, each at most a page (a larger delta is sent
 * raw); `refs` exactly when there are Dedup pages; `zcodec` and `zlen` exactly when there are
 * Compressed pages, 1 ≤ zlen ≤ compressed × pageSize (a block that does not shrink is sent raw);
 * a batch with encoded pages names each page once and never refers to a page of the same batch
 * (the raw pages of a batch land before its encoded ones are applied: a reference to one would
 * see its new bytes, not the ones the source meant).
 */
import { MigrationError } from '../errors.ts';
import { MAX_PAGE_KIND, PageKind, type PagesMeta } from './message-types.ts';

/** What a batch holds, by kind, and the bytes each part of its payload takes. */
export interface PagesLayout {
  raw: number;
  zero: number;
  delta: number;
  dedup: number;
  compressed: number;
  /** raw × pageSize. */
  rawBytes: number;
  /** Sum of `deltas`. */
  deltaBytes: number;
  /** The compressed block's bytes (0 without Compressed pages). */
  zlen: number;
  /** rawBytes + deltaBytes + zlen: the payload's length. */
  payloadBytes: number;
}

/**
 * The most a batch's compressed block may inflate to: the default frame limit. A source's batch
 * is 256 pages (1 MiB); without this bound a 16 MiB frame of brotli could ask for an allocation
 * of (its page count, up to the metadata limit) × 4 KiB — hundreds of MiB.
 */
export const MAX_INFLATED_BYTES = 16 * 1024 * 1024;

function reject(text: string): never {
  throw new MigrationError('ERR_BAD_METADATA', `Pages: ${text}`);
}

/** Count a batch's pages by kind and size its payload's parts. Throws ERR_BAD_METADATA. */
export function pagesLayout(
  meta: Pick<PagesMeta, 'pages' | 'kinds' | 'deltas' | 'refs' | 'zcodec' | 'zlen'>,
  pageSize: number,
): PagesLayout {
  const { pages, kinds, deltas, refs, zcodec, zlen } = meta;
  if (kinds.length !== pages.length) reject(`${pages.length} page numbers but ${kinds.length} kinds`);
  const count = [0, 0, 0, 0, 0];
  for (let i = 0; i < kinds.length; i++) {
    const kind = kinds[i]!;
    if (kind > MAX_PAGE_KIND) reject(`unknown page kind ${kind} at index ${i}`);
    count[kind]! += 1;
  }
  const [raw, zero, delta, dedup, compressed] = count as [number, number, number, number, number];
  let deltaBytes = 0;
  if (delta > 0 || deltas !== undefined) {
    if (deltas === undefined || deltas.length !== delta) {
      reject(`${delta} delta pages but ${deltas?.length ?? 'no'} delta lengths`);
    }
    for (let k = 0; k < deltas.length; k++) {
      const length = deltas[k]!;
      if (length > pageSize) reject(`delta ${k} is ${length} bytes, more than a ${pageSize}-byte page`);
      deltaBytes += length;
    }
  }
  if ((dedup > 0 || refs !== undefined) && refs?.length !== dedup) {
    reject(`${dedup} dedup pages but ${refs?.length ?? 'no'} references`);
  }
  let block = 0;
  if (compressed > 0 || zcodec !== undefined || zlen !== undefined) {
    if (zcodec === undefined || zlen === undefined) reject(`${compressed} compressed pages without zcodec and zlen`);
    if (compressed === 0) reject('a compressed block without compressed pages');
    if (compressed * pageSize > MAX_INFLATED_BYTES) {
      reject(`${compressed} compressed pages inflate past ${MAX_INFLATED_BYTES} bytes`);
    }
    if (zlen < 1 || zlen > compressed * pageSize) {
      reject(`a ${zlen}-byte block for ${compressed} compressed pages of ${pageSize} bytes`);
    }
    block = zlen;
  }
  if (delta + dedup + compressed > 0) checkEncodedBatch(pages, refs);
  const rawBytes = raw * pageSize;
  return {
    raw,
    zero,
    delta,
    dedup,
    compressed,
    rawBytes,
    deltaBytes,
    zlen: block,
    payloadBytes: rawBytes + deltaBytes + block,
  };
}

/** Each page once; no reference to a page of the same batch. */
function checkEncodedBatch(pages: Uint32Array, refs: Uint32Array | undefined): void {
  const seen = new Set<number>();
  for (let i = 0; i < pages.length; i++) {
    const page = pages[i]!;
    if (seen.has(page)) reject(`page ${page} twice in a batch with encoded pages`);
    seen.add(page);
  }
  if (refs === undefined) return;
  for (let k = 0; k < refs.length; k++) {
    if (seen.has(refs[k]!)) reject(`reference ${k} is to page ${refs[k]}, a page of the same batch`);
  }
}

/** Kinds that build on the destination's copy: usable only before the destination's VM runs. */
export function buildsOnDestination(kind: number): boolean {
  return kind === PageKind.Delta || kind === PageKind.Dedup;
}

/**
 * The page encodings a set of negotiated capabilities allows (capabilities xbzrle, dedup,
 * compress; `dedupHost`: references to host content, dedup-host with dedup).
 */
export function negotiatedEncodings(capabilities: ReadonlySet<string>): {
  delta: boolean;
  dedup: boolean;
  dedupHost: boolean;
  compress: boolean;
} {
  return {
    delta: capabilities.has('xbzrle'),
    dedup: capabilities.has('dedup'),
    dedupHost: capabilities.has('dedup') && capabilities.has('dedup-host'),
    compress: capabilities.has('compress'),
  };
}
