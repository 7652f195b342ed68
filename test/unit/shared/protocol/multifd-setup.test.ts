/**
 * The parallel bulk channels' fields of Setup and SetupDone (capability `multifd`, issue 18):
 * they round-trip, and every bound holds against hostile input — a channel count outside
 * 2..MAX_CHANNELS, ports without a token (or the reverse), too few or too many ports, a port that
 * is no TCP port, a token that is not 64 hex digits — each refused with ERR_BAD_METADATA.
 */
import { describe, expect, it } from 'vitest';
import { MAX_CHANNELS } from '../../../../shared/src/multifd/index.ts';
import {
  decodeFrames,
  encodeFrameBytes,
  msg,
  MsgType,
  type SetupDoneMsg,
} from '../../../../shared/src/protocol/index.ts';
import { codeOf, rawFrame } from './helpers.ts';

const TOKEN = 'ab'.repeat(32);
const vm = { name: 'vm', memoryBytes: 1 << 20, pageSize: 4096, workload: 'idle', init: 'zero', seed: 1, nic: '' };

function roundTrip<T>(message: T): T {
  const [decoded] = decodeFrames(encodeFrameBytes(message as Parameters<typeof encodeFrameBytes>[0]));
  return decoded as T;
}

describe('Setup.channels', () => {
  it('round-trips, and is absent unless asked for', () => {
    const asked = msg.setup({ migrationId: 'm', mode: 'precopy', vm, channels: 3 });
    expect(roundTrip(asked).channels).toBe(3);
    expect(roundTrip(msg.setup({ migrationId: 'm', mode: 'precopy', vm })).channels).toBeUndefined();
  });

  it.each([0, 1, MAX_CHANNELS + 1, 2 ** 31])('refuses %i channels with ERR_BAD_METADATA', (channels) => {
    const frame = rawFrame({
      type: MsgType.Setup,
      meta: { migrationId: 'm', ticket: '', mode: 'precopy', vm, channels },
    });
    expect(codeOf(() => decodeFrames(frame))).toBe('ERR_BAD_METADATA');
  });
});

describe('SetupDone.multifdPorts and multifdToken', () => {
  it('round-trip, channel i at i', () => {
    const done = msg.setupDone(3, undefined, undefined, { ports: [4001, 4002, 4003], token: TOKEN });
    const back = roundTrip<SetupDoneMsg>(done);
    expect(back.multifdPorts).toEqual([4001, 4002, 4003]);
    expect(back.multifdToken).toBe(TOKEN);
  });

  const bad: [string, Record<string, unknown>][] = [
    ['ports without a token', { multifdPorts: [4001, 4002] }],
    ['a token without ports', { multifdToken: TOKEN }],
    ['one port', { multifdPorts: [4001], multifdToken: TOKEN }],
    [
      'more ports than MAX_CHANNELS',
      { multifdPorts: Array.from({ length: MAX_CHANNELS + 1 }, (_, i) => 4001 + i), multifdToken: TOKEN },
    ],
    ['port 0', { multifdPorts: [4001, 0], multifdToken: TOKEN }],
    ['port 65536', { multifdPorts: [4001, 65_536], multifdToken: TOKEN }],
    ['a short token', { multifdPorts: [4001, 4002], multifdToken: 'ab' }],
    ['an upper-case token', { multifdPorts: [4001, 4002], multifdToken: 'AB'.repeat(32) }],
    ['ports that are not numbers', { multifdPorts: ['4001', '4002'], multifdToken: TOKEN }],
  ];
  it.each(bad)('refuses %s with ERR_BAD_METADATA', (_what, fields) => {
    const frame = rawFrame({ type: MsgType.SetupDone, meta: { preparedMs: 1, ...fields } });
    expect(codeOf(() => decodeFrames(frame, { role: 'source' }))).toBe('ERR_BAD_METADATA');
  });
});
