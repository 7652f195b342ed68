import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MigrationError } from '../../../../shared/src/errors.ts';
import {
  MAX_MSG_TYPE,
  MESSAGE_SPEC,
  MsgType,
  decodeFrames,
  encodeFrame,
  mayReceive,
  messageName,
  msg,
  peerError,
  specOf,
} from '../../../../shared/src/protocol/index.ts';
import { PAGE_COUNT, messageArbitraries, normalise } from './arbitraries.ts';

const allTypes = Array.from({ length: MAX_MSG_TYPE }, (_, i) => i + 1);

describe('MESSAGE_SPEC', () => {
  it('has one row per MsgType 1..MAX_MSG_TYPE, with unique names, and none for Invalid (0)', () => {
    expect(
      Object.keys(MESSAGE_SPEC)
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual(allTypes);
    const names = allTypes.map((t) => specOf(t)!.name);
    expect(new Set(names).size).toBe(names.length);
    expect(specOf(MsgType.Invalid)).toBeUndefined();
    expect(specOf(MAX_MSG_TYPE + 1)).toBeUndefined();
    expect(messageName(MsgType.Pages)).toBe('Pages');
    expect(messageName(200)).toBe('type 200');
  });

  it('has an arbitrary (and so a round-trip test) for every message type', () => {
    expect(Object.keys(messageArbitraries).sort()).toEqual(names().sort());
  });

  it('sends each message only in its documented direction', () => {
    expect(mayReceive(MsgType.Pages, 'dest')).toBe(true);
    expect(mayReceive(MsgType.Pages, 'source')).toBe(false);
    expect(mayReceive(MsgType.PageRequest, 'source')).toBe(true);
    expect(mayReceive(MsgType.PageRequest, 'dest')).toBe(false);
    expect(mayReceive(MsgType.Heartbeat, 'source') && mayReceive(MsgType.Heartbeat, 'dest')).toBe(true);
    expect(mayReceive(MsgType.Invalid, 'dest')).toBe(false);
  });
});

function names(): string[] {
  return allTypes.map((t) => specOf(t)!.name);
}

describe('round trip of every message type', () => {
  for (const [name, arbitrary] of Object.entries(messageArbitraries)) {
    it(`${name}: decode(encode(m)) equals m`, () => {
      fc.assert(
        fc.property(arbitrary, (message) => {
          const decoded = decodeFrames(Buffer.concat(encodeFrame(message)), { pageCount: PAGE_COUNT });
          expect(decoded).toHaveLength(1);
          expect(normalise(decoded[0])).toEqual(normalise(message));
          expect(messageName(decoded[0]!.type)).toBe(name);
        }),
        { numRuns: 200 },
      );
    });
  }
});

describe('factories', () => {
  it('msg.hello defaults to the supported versions and copies its lists', () => {
    const caps = ['postcopy'];
    const hello = msg.hello({ agentId: 'a', capabilities: caps });
    expect(hello).toEqual({ type: MsgType.Hello, versions: [1], agentId: 'a', capabilities: ['postcopy'] });
    caps.push('x');
    expect(hello.capabilities).toEqual(['postcopy']);
  });

  it('msg.pages and msg.pageRequest accept plain arrays and default requestId to 0', () => {
    const pages = msg.pages({ round: 2, pages: [1, 2], kinds: [1, 1] });
    expect(pages.pages).toBeInstanceOf(Uint32Array);
    expect(pages.kinds).toBeInstanceOf(Uint8Array);
    expect(pages.requestId).toBe(0);
    expect(msg.pageRequest(3, [7]).pages).toEqual(new Uint32Array([7]));
  });

  it('msg.errorFrom carries the code and message; peerError maps a received Error to ERR_PEER_ABORTED', () => {
    const frame = msg.errorFrom(new MigrationError('ERR_DIGEST_MISMATCH', 'differs'));
    expect(frame).toEqual({ type: MsgType.Error, code: 'ERR_DIGEST_MISMATCH', message: 'differs' });
    const err = peerError(frame);
    expect(err.code).toBe('ERR_PEER_ABORTED');
    expect(err.message).toContain('ERR_DIGEST_MISMATCH');
  });
});
