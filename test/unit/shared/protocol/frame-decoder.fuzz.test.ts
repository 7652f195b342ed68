/**
 * Hostile input, time-boxed: at least 10^5 generated streams — random bytes, valid streams with
 * flipped/overwritten bytes, valid streams cut short — each fed in random pieces. Every outcome
 * must be messages or a MigrationError with a protocol code; never another exception, never
 * more buffered than one maximum frame.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MigrationError, type ErrorCode } from '../../../../shared/src/errors.ts';
import { FrameDecoder, encodeFrame, type PageSink } from '../../../../shared/src/protocol/index.ts';
import { PAGE_COUNT, anyMessage } from './arbitraries.ts';

const PROTOCOL_CODES = new Set<ErrorCode>([
  'ERR_BAD_MAGIC',
  'ERR_PROTOCOL_VERSION',
  'ERR_UNKNOWN_MESSAGE',
  'ERR_FRAME_TOO_LARGE',
  'ERR_BAD_METADATA',
  'ERR_BAD_PAYLOAD',
  'ERR_TRUNCATED',
  'ERR_PAGE_OUT_OF_RANGE',
  'ERR_BLOCK_OUT_OF_RANGE',
]);
const MAX_FRAME = 64 * 1024;
const CASES = 100_000;
const TIME_BOX_MS = 50_000;

const sink: PageSink = { pagesBegin() {}, pageBytes() {}, pagesEnd() {} };

/** Feed `stream` in pieces; return the error code (or 'ok'). Throws on a non-MigrationError. */
function run(stream: Uint8Array, cuts: readonly number[], withSink: boolean): string {
  const decoder = new FrameDecoder({ maxFrameBytes: MAX_FRAME, pageCount: PAGE_COUNT, ...(withSink ? { sink } : {}) });
  let last = 0;
  try {
    for (const cut of [...cuts, stream.length]) {
      const next = Math.min(stream.length, Math.max(last, cut));
      decoder.push(stream.subarray(last, next));
      if (decoder.bufferedBytes > MAX_FRAME) throw new Error(`buffered ${decoder.bufferedBytes} bytes`);
      last = next;
    }
    decoder.end();
    return 'ok';
  } catch (err) {
    if (!(err instanceof MigrationError) || !PROTOCOL_CODES.has(err.code)) throw err;
    return err.code;
  }
}

const cutsArb = fc.array(fc.nat({ max: 4096 }), { maxLength: 8 }).map((c) => c.sort((a, b) => a - b));

const randomBytes = fc.record({
  stream: fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    // random bytes behind a valid magic + version, so the later checks get exercised too
    fc.uint8Array({ maxLength: 96 }).map((b) => Uint8Array.from([0x4c, 0x4d, 1, ...b])),
  ),
  cuts: cutsArb,
  withSink: fc.boolean(),
});

const mutatedValid = fc
  .record({
    messages: fc.array(anyMessage, { minLength: 1, maxLength: 3 }),
    edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    truncateTo: fc.option(fc.nat(), { nil: undefined }),
    cuts: cutsArb,
    withSink: fc.boolean(),
  })
  .map(({ messages, edits, truncateTo, cuts, withSink }) => {
    let stream = Buffer.concat(messages.flatMap((m) => encodeFrame(m)));
    stream = Buffer.from(stream); // own copy to edit
    for (const [at, value] of edits) stream[at % stream.length] = value;
    if (truncateTo !== undefined) stream = stream.subarray(0, truncateTo % (stream.length + 1));
    return { stream, cuts, withSink };
  });

describe('FrameDecoder fuzz (time-boxed)', () => {
  it(`handles ≥ ${CASES} hostile streams with only protocol MigrationErrors`, () => {
    const started = performance.now();
    const outcomes = new Map<string, number>();
    let cases = 0;
    const property = fc.property(fc.oneof(randomBytes, mutatedValid), ({ stream, cuts, withSink }) => {
      cases++;
      const outcome = run(stream, cuts, withSink);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    });
    fc.assert(property, { numRuns: CASES, interruptAfterTimeLimit: TIME_BOX_MS });
    const seconds = (performance.now() - started) / 1000;
    console.log(`frame decoder fuzz: ${cases} cases in ${seconds.toFixed(1)} s`, Object.fromEntries(outcomes));
    expect(cases).toBeGreaterThanOrEqual(CASES);
    // The generators reach deep into the decoder, not just the magic check.
    for (const code of ['ok', 'ERR_BAD_MAGIC', 'ERR_BAD_METADATA', 'ERR_TRUNCATED', 'ERR_UNKNOWN_MESSAGE']) {
      expect(outcomes.get(code) ?? 0).toBeGreaterThan(0);
    }
  }, 60_000);
});
