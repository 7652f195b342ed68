/**
 * The bounded inbox, on a stand-in socket that records pause/resume: reading pauses exactly when
 * INBOX_HIGH messages wait unread, resumes once the consumer took it down to INBOX_LOW, and no
 * message is lost or reordered on the way.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { FramedPeerChannel, INBOX_HIGH, INBOX_LOW } from '@livemig/shared/channel';
import { msg, MsgType, type FramedSocket } from '@livemig/shared/protocol';

function fakeSocket(): { socket: FramedSocket; calls: string[]; deliver: (n: number, from: number) => void } {
  const emitter = new EventEmitter();
  const calls: string[] = [];
  const socket = Object.assign(emitter, {
    pause: () => calls.push('pause'),
    resume: () => calls.push('resume'),
    stats: { bytesSent: 0, bytesReceived: 0 },
  }) as unknown as FramedSocket;
  const deliver = (n: number, from: number): void => {
    for (let i = 0; i < n; i++) emitter.emit('message', msg.roundAck(from + i));
  };
  return { socket, calls, deliver };
}

describe('FramedPeerChannel inbox', () => {
  it(`pauses reading at ${INBOX_HIGH} unread messages and resumes at ${INBOX_LOW}, losing nothing`, async () => {
    const { socket, calls, deliver } = fakeSocket();
    const channel = new FramedPeerChannel(socket, { remoteAgentId: 'peer', rttMs: 0 });
    deliver(INBOX_HIGH - 1, 0);
    expect(calls).toEqual([]);
    deliver(1, INBOX_HIGH - 1);
    expect(calls).toEqual(['pause']);
    expect(channel.readingPaused).toBe(true);
    deliver(10, INBOX_HIGH); // already decoded when the pause came: queued, not dropped
    expect(calls).toEqual(['pause']);
    let next = 0;
    while (channel.queued > INBOX_LOW + 1) expect((await channel.expect(MsgType.RoundAck)).round).toBe(next++);
    expect(calls).toEqual(['pause']);
    expect((await channel.expect(MsgType.RoundAck)).round).toBe(next++);
    expect(calls).toEqual(['pause', 'resume']);
    expect(channel.readingPaused).toBe(false);
    while (channel.queued > 0) expect((await channel.expect(MsgType.RoundAck)).round).toBe(next++);
    expect(next).toBe(INBOX_HIGH + 10);
  });

  it('a message for a waiting consumer never touches the inbox', async () => {
    const { socket, calls, deliver } = fakeSocket();
    const channel = new FramedPeerChannel(socket, { remoteAgentId: 'peer', rttMs: 0 });
    const waiting = channel.next();
    deliver(1, 7);
    expect(await waiting).toEqual(msg.roundAck(7));
    expect(channel.queued).toBe(0);
    expect(calls).toEqual([]);
  });
});
