/**
 * Host content on the wire (capability dedup-host): Setup's `hostContent` request, SetupDone's
 * hashes and references past the page count — each bounded, and a hostile frame refused with a
 * code before its payload is buffered.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeFrames,
  encodeFrame,
  encodePages,
  FrameDecoder,
  HOST_HASH_BYTES,
  KNOWN_CAPABILITIES,
  MAX_HOST_CONTENT_PAGES,
  MsgType,
  msg,
  negotiatedEncodings,
  PageKind,
  type Message,
  type SetupDoneMsg,
  type SetupMsg,
} from '../../../../shared/src/protocol/index.ts';
import { codeOf, rawFrame } from './helpers.ts';

const PAGE_SIZE = 4096;
const PAGES = 16;
const bytesOf = (m: Message): Buffer => Buffer.concat(encodeFrame(m));
const setup = (hostContent?: number): SetupMsg =>
  msg.setup({
    migrationId: 'm',
    mode: 'precopy',
    vm: {
      name: 'vm',
      memoryBytes: PAGES * PAGE_SIZE,
      pageSize: PAGE_SIZE,
      workload: 'idle',
      init: 'zero',
      seed: 1,
      nic: '',
    },
    ...(hostContent !== undefined ? { hostContent } : {}),
  });

describe('dedup-host on the wire', () => {
  it('is a capability, negotiated only together with dedup', () => {
    expect(KNOWN_CAPABILITIES).toHaveProperty('dedup-host');
    expect(negotiatedEncodings(new Set(['dedup', 'dedup-host'])).dedupHost).toBe(true);
    expect(negotiatedEncodings(new Set(['dedup-host'])).dedupHost).toBe(false);
    expect(negotiatedEncodings(new Set(['dedup'])).dedupHost).toBe(false);
  });

  it("Setup's request round-trips, and 0 or more than MAX_HOST_CONTENT_PAGES is refused", () => {
    const [asked] = decodeFrames(bytesOf(setup(MAX_HOST_CONTENT_PAGES)));
    expect((asked as SetupMsg).hostContent).toBe(MAX_HOST_CONTENT_PAGES);
    expect((decodeFrames(bytesOf(setup()))[0] as SetupMsg).hostContent).toBeUndefined();
    for (const bad of [0, MAX_HOST_CONTENT_PAGES + 1]) {
      expect(codeOf(() => decodeFrames(bytesOf(setup(bad))))).toBe('ERR_BAD_METADATA');
    }
  });

  it("SetupDone's hashes round-trip as its payload; none offered is no payload", () => {
    const hashes = new Uint8Array(3 * HOST_HASH_BYTES).map((_, i) => i);
    const [done] = decodeFrames(bytesOf(msg.setupDone(12.5, { hashes, ms: 4.25 })), { role: 'source' });
    expect(done).toMatchObject({ type: MsgType.SetupDone, preparedMs: 12.5, hostMs: 4.25 });
    expect(Buffer.compare((done as SetupDoneMsg).hostHashes!, hashes)).toBe(0);
    const [none] = decodeFrames(bytesOf(msg.setupDone(1, { hashes: new Uint8Array(0), ms: 0 })), { role: 'source' });
    expect(none).toEqual({ type: MsgType.SetupDone, preparedMs: 1, hostMs: 0 });
  });

  it('an oversized hash list is refused from the header, before a byte of it is buffered', () => {
    const meta = { preparedMs: 1 };
    const decoder = new FrameDecoder({ role: 'source' });
    // The header and metadata only: the decoder must refuse without waiting for the payload.
    const frame = rawFrame({
      type: MsgType.SetupDone,
      meta,
      payloadLen: (MAX_HOST_CONTENT_PAGES + 1) * HOST_HASH_BYTES,
    });
    expect(codeOf(() => decoder.push(frame))).toBe('ERR_BAD_PAYLOAD');
    // The largest list is accepted.
    const largest = msg.setupDone(1, { hashes: new Uint8Array(MAX_HOST_CONTENT_PAGES * HOST_HASH_BYTES), ms: 0 });
    expect(decodeFrames(bytesOf(largest), { role: 'source' })).toHaveLength(1);
  });

  it('a hash list that is not whole 32-byte hashes is refused', () => {
    const frame = rawFrame({ type: MsgType.SetupDone, meta: { preparedMs: 1 }, payload: new Uint8Array(33) });
    expect(codeOf(() => decodeFrames(frame, { role: 'source' }))).toBe('ERR_BAD_PAYLOAD');
  });

  it('a reference may name host content up to pageCount + MAX_HOST_CONTENT_PAGES − 1, not past it', () => {
    const batch = (ref: number): Buffer =>
      Buffer.concat(
        encodePages(
          { round: 0, pages: Uint32Array.of(3), kinds: Uint8Array.of(PageKind.Dedup), refs: Uint32Array.of(ref) },
          [],
        ),
      );
    const decode = (ref: number) => () => new FrameDecoder({ pageCount: PAGES, role: 'dest' }).push(batch(ref));
    expect(decode(PAGES)()).toHaveLength(1);
    expect(decode(PAGES + MAX_HOST_CONTENT_PAGES - 1)()).toHaveLength(1);
    expect(codeOf(decode(PAGES + MAX_HOST_CONTENT_PAGES))).toBe('ERR_PAGE_OUT_OF_RANGE');
    expect(codeOf(decode(0xffff_ffff))).toBe('ERR_PAGE_OUT_OF_RANGE');
  });
});
