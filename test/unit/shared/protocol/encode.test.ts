import { describe, expect, it } from 'vitest';
import {
  HEADER_BYTES,
  MsgType,
  decodeFrames,
  decodeMeta,
  encodeMeta,
  u32ToBytes,
  encodeFrame,
  encodeFrameBytes,
  encodePages,
  encodePagesFrom,
  frameByteLength,
  msg,
} from '../../../../shared/src/protocol/index.ts';
import { codeOf } from './helpers.ts';

const PAGE = 4096;

describe('encodeFrame', () => {
  it('writes the documented header layout (golden bytes of Heartbeat {seq: 1})', () => {
    const bytes = encodeFrameBytes(msg.heartbeat(1));
    // magic "LM", version 1, type 17, flags 0, metaLen 6, payloadLen 0, then {"seq":1}
    expect(bytes.toString('hex')).toBe('4c4d' + '01' + '11' + '0000' + '06000000' + '00000000' + '81a373657101');
  });

  it('returns [head] for messages without payload and [head, payload] with the payload itself (no copy)', () => {
    expect(encodeFrame(msg.handoff())).toHaveLength(1);
    const registers = new Uint8Array([1, 2, 3]);
    const frame = encodeFrame(msg.cpuState(5, registers));
    expect(frame).toHaveLength(2);
    expect(frame[1]).toBe(registers);
  });

  it('writes the version it is given', () => {
    expect(encodeFrameBytes(msg.complete(), { version: 7 })[2]).toBe(7);
  });

  it('ERR_FRAME_TOO_LARGE: refuses to build a frame over maxFrameBytes', () => {
    expect(codeOf(() => encodeFrame(msg.cpuState(1, new Uint8Array(2000)), { maxFrameBytes: 1000 }))).toBe(
      'ERR_FRAME_TOO_LARGE',
    );
  });

  it('ERR_INVALID_ARGUMENT: Pages data not matching its raw kinds, and an unknown type', () => {
    expect(codeOf(() => encodeFrame(msg.pages({ round: 0, pages: [1], kinds: [0], data: new Uint8Array(10) })))).toBe(
      'ERR_INVALID_ARGUMENT',
    );
    expect(codeOf(() => encodeFrame({ type: 0 } as never))).toBe('ERR_INVALID_ARGUMENT');
  });
});

describe('encodePages', () => {
  const memory = new Uint8Array(new SharedArrayBuffer(16 * PAGE));
  for (let i = 0; i < memory.length; i++) memory[i] = i % 251;
  const view = (p: number) => memory.subarray(p * PAGE, (p + 1) * PAGE);

  it('returns the page views themselves, never copies', () => {
    const views = [view(3), view(9)];
    const out = encodePages({ round: 0, pages: new Uint32Array([3, 9]), kinds: new Uint8Array([0, 0]) }, views);
    expect(out).toHaveLength(3);
    expect(out[1]).toBe(views[0]);
    expect(out[2]).toBe(views[1]);
    expect(out[1]!.buffer).toBe(memory.buffer);
  });

  it('merges adjacent views of the same memory into one view (one iovec)', () => {
    const out = encodePages({ round: 0, pages: new Uint32Array([4, 5, 6]), kinds: new Uint8Array(3) }, [
      view(4),
      view(5),
      view(6),
    ]);
    expect(out).toHaveLength(2);
    expect(out[1]!.buffer).toBe(memory.buffer);
    expect(out[1]!.byteOffset).toBe(4 * PAGE);
    expect(out[1]!.length).toBe(3 * PAGE);
  });

  it('decodes to the same pages and bytes; zero pages carry no bytes', () => {
    const pages = new Uint32Array([1, 2, 7]);
    const kinds = new Uint8Array([0, 1, 0]);
    const out = encodePages({ round: 3, requestId: 9, pages, kinds }, [view(1), view(7)]);
    expect(frameByteLength(out) - frameByteLength(out.slice(0, 1))).toBe(2 * PAGE);
    const [m] = decodeFrames(Buffer.concat(out));
    expect(m!.type).toBe(MsgType.Pages);
    if (m!.type !== MsgType.Pages) return;
    expect(m.round).toBe(3);
    expect(m.requestId).toBe(9);
    expect(m.pages).toEqual(pages);
    expect(m.kinds).toEqual(kinds);
    expect(Buffer.from(m.data!).equals(Buffer.concat([view(1), view(7)]))).toBe(true);
  });

  it('keeps the metadata small: 256 page numbers and kinds cost about 5 bytes per page', () => {
    const pages = Uint32Array.from({ length: 256 }, (_, i) => i * 3);
    const head = encodePages({ round: 0, pages, kinds: new Uint8Array(256).fill(1) }, [])[0]!;
    expect(head.length - HEADER_BYTES).toBeLessThan(256 * 5 + 64);
  });

  it('writes the same metadata msgpack-lite would (the hand-written hot path)', () => {
    const batch = {
      round: 70_000,
      requestId: 3,
      pages: new Uint32Array([1, 2, 0xffff_fffe]),
      kinds: new Uint8Array([1, 0, 1]),
    };
    const head = encodePages(batch, [view(2)])[0]!;
    const ours = decodeMeta(head.subarray(HEADER_BYTES));
    const theirs = decodeMeta(
      encodeMeta({ ...batch, pages: u32ToBytes(batch.pages), kinds: Buffer.from(batch.kinds) }),
    );
    expect(ours).toEqual(theirs);
  });

  it('ERR_INVALID_ARGUMENT: round or requestId outside u32', () => {
    const pages = new Uint32Array(0);
    const kinds = new Uint8Array(0);
    expect(codeOf(() => encodePages({ round: -1, pages, kinds }, []))).toBe('ERR_INVALID_ARGUMENT');
    expect(codeOf(() => encodePages({ round: 0, requestId: 2 ** 32, pages, kinds }, []))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('encodePagesFrom cuts one view per run of consecutive raw pages out of memory', () => {
    const pages = new Uint32Array([3, 4, 5, 6, 8, 9, 12]);
    const kinds = new Uint8Array([0, 0, 1, 0, 0, 0, 0]); // 5 is zero: runs 3-4 | 6 | 8-9 | 12
    const out = encodePagesFrom({ round: 0, pages, kinds }, memory);
    expect(out.slice(1).map((v) => [v.byteOffset / PAGE, v.length / PAGE])).toEqual([
      [3, 2],
      [6, 1],
      [8, 2],
      [12, 1],
    ]);
    expect(out.slice(1).every((v) => v.buffer === memory.buffer)).toBe(true);
    const viaViews = encodePages({ round: 0, pages, kinds }, [3, 4, 6, 8, 9, 12].map(view));
    expect(Buffer.concat(out).equals(Buffer.concat(viaViews))).toBe(true);
  });

  it('encodePagesFrom honours firstPage (a memory region) and rejects pages outside it', () => {
    const region = memory.subarray(8 * PAGE, 16 * PAGE);
    const out = encodePagesFrom({ round: 0, pages: new Uint32Array([9]), kinds: new Uint8Array(1) }, region, 8);
    expect(out[1]!.byteOffset).toBe(9 * PAGE);
    expect(
      codeOf(() => encodePagesFrom({ round: 0, pages: new Uint32Array([7]), kinds: new Uint8Array(1) }, region, 8)),
    ).toBe('ERR_INVALID_ARGUMENT');
    expect(
      codeOf(() => encodePagesFrom({ round: 0, pages: new Uint32Array([16]), kinds: new Uint8Array(1) }, region, 8)),
    ).toBe('ERR_INVALID_ARGUMENT');
  });

  it('ERR_INVALID_ARGUMENT: views not totalling rawCount × pageSize', () => {
    const batch = { round: 0, pages: new Uint32Array([1, 2]), kinds: new Uint8Array([0, 0]) };
    expect(codeOf(() => encodePages(batch, [view(1)]))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('ERR_BAD_METADATA: kinds and pages of different lengths, or an unknown kind', () => {
    expect(codeOf(() => encodePages({ round: 0, pages: new Uint32Array([1]), kinds: new Uint8Array(2) }, []))).toBe(
      'ERR_BAD_METADATA',
    );
    expect(codeOf(() => encodePages({ round: 0, pages: new Uint32Array([1]), kinds: new Uint8Array([5]) }, []))).toBe(
      'ERR_BAD_METADATA',
    );
  });
});
