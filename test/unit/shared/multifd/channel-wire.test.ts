import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '@livemig/shared';
import {
  FrameParser,
  HEADER_BYTES,
  TYPE,
  errorFrame,
  frameHead,
  type FrameHandler,
} from '../../../../shared/src/multifd/channel-wire.mjs';

interface Seen {
  type: number;
  meta: Record<string, unknown>;
  payload: number[];
}

/** A parser whose payloads go into per-frame buffers (as pages go into guest memory). */
function collecting(): { parser: FrameParser; seen: Seen[] } {
  const seen: Seen[] = [];
  let current: Uint8Array | undefined;
  let filled = 0;
  const handler: FrameHandler = {
    frame(_type, _meta, payloadLen) {
      if (payloadLen === 0) return undefined;
      current = new Uint8Array(payloadLen);
      filled = 0;
      return {
        // Odd-sized targets: the parser must cope with a sink that takes less than is left.
        target: () => current!.subarray(filled, Math.min(current!.length, filled + 5)),
        advance: (n) => (filled += n),
        end: () => {},
      };
    },
    end(type, meta) {
      seen.push({ type, meta, payload: [...(current ?? [])] });
      current = undefined;
    },
  };
  return { parser: new FrameParser(handler), seen };
}

const frames = fc.array(
  fc.record({
    round: fc.nat(1000),
    payload: fc.uint8Array({ maxLength: 40 }),
  }),
  { minLength: 1, maxLength: 8 },
);

describe('the multifd channel wire', () => {
  it('parses any frame sequence identically however the bytes are split, fed as chunks or read in place', () => {
    fc.assert(
      fc.property(
        frames,
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
        fc.boolean(),
        (list, cuts, inPlace) => {
          const bytes = Buffer.concat(
            list.flatMap((f) => [frameHead(TYPE.Pages, { round: f.round }, f.payload.length), Buffer.from(f.payload)]),
          );
          const { parser, seen } = collecting();
          let at = 0;
          for (let k = 0; at < bytes.length; k++) {
            const size = cuts[k % cuts.length]!;
            if (inPlace) {
              // As a socket with `onread`: it reads at most target().length bytes into target().
              const target = parser.target();
              const n = Math.min(size, target.length, bytes.length - at);
              target.set(bytes.subarray(at, at + n));
              parser.advance(n);
              at += n;
            } else {
              parser.feed(bytes.subarray(at, at + size));
              at += size;
            }
          }
          expect(seen.map((s) => ({ round: s.meta.round, payload: s.payload }))).toEqual(
            list.map((f) => ({ round: f.round, payload: [...f.payload] })),
          );
          expect(parser.inFrame).toBe(false);
        },
      ),
    );
  });

  it('reads a frame in at most three exact steps in place: header, metadata, then payload', () => {
    const { parser } = collecting();
    expect(parser.target().length).toBe(HEADER_BYTES);
    const head = frameHead(TYPE.RoundEnd, { round: 1 }, 0);
    parser.target().set(head.subarray(0, HEADER_BYTES));
    parser.advance(HEADER_BYTES);
    expect(parser.target().length).toBe(head.length - HEADER_BYTES);
  });

  it('turns arbitrary bytes into coded errors only (never another throw, never a hang)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), (bytes) => {
        const { parser } = collecting();
        try {
          parser.feed(bytes);
        } catch (error) {
          expect((error as { code?: string }).code).toBeOneOf(Object.keys(ERROR_CODES));
        }
      }),
    );
  });

  it('refuses a bad magic, an unknown type, set flags and oversized metadata from the header alone', () => {
    const good = frameHead(TYPE.Pages, { round: 0 }, 0);
    const cases: [string, (b: Buffer) => void][] = [
      ['ERR_BAD_MAGIC', (b) => (b[0] = 0x47)],
      ['ERR_PROTOCOL_VERSION', (b) => (b[2] = 9)],
      ['ERR_UNKNOWN_MESSAGE', (b) => (b[3] = 3)],
      ['ERR_BAD_METADATA', (b) => (b[4] = 1)],
      ['ERR_FRAME_TOO_LARGE', (b) => b.writeUInt32LE(1 << 20, 6)],
    ];
    for (const [code, spoil] of cases) {
      const bytes = Buffer.from(good.subarray(0, HEADER_BYTES));
      spoil(bytes);
      expect(() => collecting().parser.feed(bytes), code).toThrow(expect.objectContaining({ code }));
    }
  });

  it('refuses metadata that is not one msgpack map, and a payload where the handler takes none', () => {
    const notMap = Buffer.from(frameHead(TYPE.RoundEnd, { round: 0 }, 0));
    notMap[HEADER_BYTES] = 0x01; // a positive fixint, then trailing bytes
    expect(() => collecting().parser.feed(notMap)).toThrow(expect.objectContaining({ code: 'ERR_BAD_METADATA' }));
    const handler: FrameHandler = { frame: () => undefined, end: () => {} };
    expect(() => new FrameParser(handler).feed(frameHead(TYPE.RoundEnd, { round: 0 }, 8))).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_PAYLOAD' }),
    );
  });

  it('carries an Error frame with its code and message', () => {
    const { parser, seen } = collecting();
    parser.feed(errorFrame('ERR_FORBIDDEN', 'no'));
    expect(seen).toEqual([{ type: TYPE.Error, meta: { code: 'ERR_FORBIDDEN', message: 'no' }, payload: [] }]);
  });
});
