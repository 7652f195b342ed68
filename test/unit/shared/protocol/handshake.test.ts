import { describe, expect, it } from 'vitest';
import {
  KNOWN_CAPABILITIES,
  MsgType,
  PROTOCOL_VERSION,
  acceptWelcome,
  makeHello,
  msg,
  negotiate,
  sessionFromWelcome,
} from '../../../../shared/src/protocol/index.ts';
import { codeOf } from './helpers.ts';

const dest = { agentId: 'dest', capabilities: ['postcopy', 'setup-bitmap', 'zero-pages'] };
const source = { agentId: 'src', capabilities: ['postcopy', 'zero-pages', 'teleport'] };

describe('handshake', () => {
  it('makeHello offers this build’s versions and only known capabilities', () => {
    const hello = makeHello(source);
    expect(hello.type).toBe(MsgType.Hello);
    expect(hello.versions).toContain(PROTOCOL_VERSION);
    expect(hello.capabilities).toEqual(['postcopy', 'zero-pages']);
  });

  it('negotiate picks the current version and the known capabilities both sides list', () => {
    const welcome = negotiate(
      dest,
      msg.hello({ agentId: 'src', capabilities: ['zero-pages', 'postcopy', 'teleport'] }),
    );
    expect(welcome).toEqual(
      msg.welcome({ version: PROTOCOL_VERSION, agentId: 'dest', capabilities: ['postcopy', 'zero-pages'] }),
    );
  });

  it('an unknown capability is negotiated off, not an error (even if both list it)', () => {
    const local = { agentId: 'dest', capabilities: ['postcopy', 'warp-drive'] };
    const welcome = negotiate(local, msg.hello({ agentId: 'src', capabilities: ['warp-drive', 'postcopy'] }));
    expect(welcome.capabilities).toEqual(['postcopy']);
  });

  it('ERR_PROTOCOL_VERSION: a fake version-2-only peer', () => {
    expect(codeOf(() => negotiate(dest, msg.hello({ agentId: 'v2', capabilities: [], versions: [2] })))).toBe(
      'ERR_PROTOCOL_VERSION',
    );
  });

  it('a peer speaking versions 2 and 1 gets the highest common one (1)', () => {
    expect(negotiate(dest, msg.hello({ agentId: 'v2', capabilities: [], versions: [2, 1] })).version).toBe(1);
  });

  it('a newer build (current 2, previous 1) picks 2 with a 2-speaking peer and 1 with us', () => {
    const newer = { ...dest, versions: [2, 1] };
    expect(negotiate(newer, msg.hello({ agentId: 'x', capabilities: [], versions: [1, 2] })).version).toBe(2);
    expect(negotiate(newer, makeHello(source)).version).toBe(1);
  });

  it('acceptWelcome yields the session; sessionFromWelcome gives the destination the same', () => {
    const hello = makeHello(source);
    const welcome = negotiate(dest, hello);
    const s = acceptWelcome(source, welcome);
    expect(s).toEqual({
      version: PROTOCOL_VERSION,
      localAgentId: 'src',
      remoteAgentId: 'dest',
      capabilities: new Set(['postcopy', 'zero-pages']),
    });
    expect(sessionFromWelcome(dest, hello, welcome).capabilities).toEqual(s.capabilities);
  });

  it('ERR_PROTOCOL_VERSION: a Welcome choosing a version we do not speak', () => {
    expect(codeOf(() => acceptWelcome(source, msg.welcome({ version: 9, agentId: 'd', capabilities: [] })))).toBe(
      'ERR_PROTOCOL_VERSION',
    );
  });

  it('ERR_HANDSHAKE: a Welcome switching on a capability we did not offer', () => {
    const welcome = msg.welcome({ version: 1, agentId: 'd', capabilities: ['setup-bitmap'] });
    expect(codeOf(() => acceptWelcome(source, welcome))).toBe('ERR_HANDSHAKE');
  });

  it('documents every known capability', () => {
    for (const text of Object.values(KNOWN_CAPABILITIES)) expect(text.length).toBeGreaterThan(10);
  });
});
