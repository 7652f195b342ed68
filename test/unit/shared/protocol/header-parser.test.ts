import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { ErrorCode } from '../../../../shared/src/errors.ts';
import {
  HEADER_BYTES,
  MAX_MSG_TYPE,
  MESSAGE_SPEC,
  MsgType,
  PROTOCOL_VERSION,
  parseHeader,
  writeHeader,
  type HeaderRules,
} from '../../../../shared/src/protocol/index.ts';
import { codeOf, rawFrame, type RawFrame } from './helpers.ts';

const RULES: HeaderRules = {
  maxFrameBytes: 1 << 20,
  maxMetaBytes: 1 << 16,
  versions: [PROTOCOL_VERSION],
  role: 'any',
  pageSize: 4096,
};

/** The 14 header bytes of a hand-built frame. */
function head(frame: RawFrame): Buffer {
  return rawFrame(frame).subarray(0, HEADER_BYTES);
}

describe('parseHeader', () => {
  it('returns the fields and the spec row of a valid header, read at any offset', () => {
    const bytes = new Uint8Array(3 + HEADER_BYTES);
    writeHeader(bytes, 3, { version: PROTOCOL_VERSION, type: MsgType.Pages, flags: 0, metaLen: 40, payloadLen: 8192 });
    expect(parseHeader(bytes, 3, RULES)).toEqual({
      version: PROTOCOL_VERSION,
      type: MsgType.Pages,
      flags: 0,
      metaLen: 40,
      payloadLen: 8192,
      spec: MESSAGE_SPEC[MsgType.Pages],
    });
  });

  it('returns undefined for fewer than 14 bytes (incomplete is not invalid), whatever they hold', () => {
    const full = head({ type: MsgType.Heartbeat, meta: { seq: 1 } });
    for (let n = 0; n < HEADER_BYTES; n++) expect(parseHeader(full.subarray(0, n), 0, RULES)).toBeUndefined();
    expect(parseHeader(Buffer.from('XXXXXXXXXXXXX'), 0, RULES)).toBeUndefined();
    expect(parseHeader(full, 1, RULES)).toBeUndefined();
  });

  it('round-trips every header writeHeader builds for a known type within the limits', () => {
    const types = Object.keys(MESSAGE_SPEC).map(Number);
    fc.assert(
      fc.property(
        fc.constantFrom(...types),
        fc.integer({ min: 1, max: RULES.maxMetaBytes }),
        fc.integer({ min: 0, max: 64 }),
        (type, metaLen, n) => {
          const spec = MESSAGE_SPEC[type as keyof typeof MESSAGE_SPEC];
          const rule = spec.payload;
          const payloadLen =
            rule.kind === 'none'
              ? 0
              : rule.kind === 'pages'
                ? n * RULES.pageSize
                : Math.max(1, Math.min(n * 1000, rule.maxBytes));
          fc.pre(HEADER_BYTES + metaLen + payloadLen <= RULES.maxFrameBytes);
          const bytes = new Uint8Array(HEADER_BYTES);
          const header = { version: PROTOCOL_VERSION, type, flags: 0, metaLen, payloadLen };
          writeHeader(bytes, 0, header);
          expect(parseHeader(bytes, 0, RULES)).toEqual({ ...header, spec });
        },
      ),
    );
  });

  it('keeps no state: the same bytes give the same answer, before and after a rejected header', () => {
    const good = head({ type: MsgType.Ready, meta: { digest: 'x' } });
    const bad = head({ type: MsgType.Ready, magic: [0, 0], meta: { digest: 'x' } });
    const first = parseHeader(good, 0, RULES);
    expect(codeOf(() => parseHeader(bad, 0, RULES))).toBe('ERR_BAD_MAGIC');
    expect(parseHeader(good, 0, RULES)).toEqual(first);
  });

  const rejected: Array<[string, RawFrame, Partial<HeaderRules>, ErrorCode]> = [
    ['bad magic', { type: MsgType.Heartbeat, magic: [0x47, 0x45] }, {}, 'ERR_BAD_MAGIC'],
    ['a version not accepted', { type: MsgType.Heartbeat, version: 2 }, {}, 'ERR_PROTOCOL_VERSION'],
    ['type 0 (Invalid)', { type: MsgType.Invalid }, {}, 'ERR_UNKNOWN_MESSAGE'],
    ['an unassigned type', { type: MAX_MSG_TYPE + 1 }, {}, 'ERR_UNKNOWN_MESSAGE'],
    ['an unknown flag bit', { type: MsgType.Heartbeat, flags: 0x8000 }, {}, 'ERR_BAD_METADATA'],
    ['a D→S message sent to the destination', { type: MsgType.Ready }, { role: 'dest' }, 'ERR_UNEXPECTED_MESSAGE'],
    ['an S→D message sent to the source', { type: MsgType.Pages }, { role: 'source' }, 'ERR_UNEXPECTED_MESSAGE'],
    [
      'a frame over maxFrameBytes',
      { type: MsgType.Pages, payloadLen: 1 << 20 },
      { maxFrameBytes: 1 << 20 },
      'ERR_FRAME_TOO_LARGE',
    ],
    [
      'metadata over maxMetaBytes',
      { type: MsgType.Heartbeat, metaLen: 65 },
      { maxMetaBytes: 64 },
      'ERR_FRAME_TOO_LARGE',
    ],
    ['no metadata', { type: MsgType.Heartbeat, metaLen: 0 }, {}, 'ERR_BAD_METADATA'],
    ['a payload on a message without one', { type: MsgType.Heartbeat, payloadLen: 1 }, {}, 'ERR_BAD_PAYLOAD'],
    ['an empty required payload (CpuState)', { type: MsgType.CpuState, payloadLen: 0 }, {}, 'ERR_BAD_PAYLOAD'],
    ['registers over their limit', { type: MsgType.CpuState, payloadLen: 64 * 1024 + 1 }, {}, 'ERR_BAD_PAYLOAD'],
  ];

  it.each(rejected)('rejects %s', (_what, frame, rules, code) => {
    expect(codeOf(() => parseHeader(head(frame), 0, { ...RULES, ...rules }))).toBe(code);
  });

  it('checks in a fixed order: the first failing check names the error', () => {
    // Bad magic and bad version: magic wins; bad version and unknown type: version wins.
    expect(codeOf(() => parseHeader(head({ type: 0, magic: [0, 0], version: 9 }), 0, RULES))).toBe('ERR_BAD_MAGIC');
    expect(codeOf(() => parseHeader(head({ type: 0, version: 9 }), 0, RULES))).toBe('ERR_PROTOCOL_VERSION');
    // Wrong direction and too large: direction wins (nothing is sized for a message that may not come).
    const wrongWayAndHuge = head({ type: MsgType.Ready, payloadLen: 0xffff_ffff });
    expect(codeOf(() => parseHeader(wrongWayAndHuge, 0, { ...RULES, role: 'dest' }))).toBe('ERR_UNEXPECTED_MESSAGE');
  });

  it('a Pages payload need not be whole pages (encoded pages): the metadata says how long it must be', () => {
    // The exact length is checked against the metadata before any payload byte is buffered
    // (page-encodings.ts; test/unit/agent-source/page-codecs.test.ts).
    const frame = head({ type: MsgType.Pages, payloadLen: 4097 });
    expect(parseHeader(frame, 0, RULES)?.payloadLen).toBe(4097);
  });
});
