/**
 * The data channel as the migration engine sees it (PeerChannel over real loopback TCP, the real
 * handshake): what was negotiated is known on both ends, and the inbox is bounded — a consumer
 * that falls behind pauses reading, so TCP pushes back on the peer instead of our memory
 * growing, and nothing is lost or reordered once it catches up.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@livemig/shared';
import {
  connectPeer,
  INBOX_HIGH,
  listenForPeers,
  type AcceptedPeer,
  type FramedPeerChannel,
  type PeerChannel,
  type PeerListener,
} from '@livemig/shared/channel';
import { msg, MsgType } from '@livemig/shared/protocol';
import { waitUntil } from '../helpers/wait.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function pair(
  capabilities: { source?: string[]; dest?: string[] } = {},
): Promise<{ source: PeerChannel; dest: AcceptedPeer }> {
  let accepted!: (peer: AcceptedPeer) => void;
  const peer = new Promise<AcceptedPeer>((resolve) => (accepted = resolve));
  const listener: PeerListener = await listenForPeers({
    host: '127.0.0.1',
    port: 0,
    agentId: 'dest',
    logger: silentLogger(),
    onPeer: accepted,
    ...(capabilities.dest ? { capabilities: capabilities.dest as never } : {}),
  });
  const { port } = listener.address();
  const source = await connectPeer({
    host: '127.0.0.1',
    port,
    agentId: 'source',
    logger: silentLogger(),
    ...(capabilities.source ? { capabilities: capabilities.source as never } : {}),
  });
  const dest = await peer;
  cleanups.push(
    () => listener.close(),
    () => source.close(),
    () => dest.channel.close(),
  );
  return { source, dest };
}

describe('PeerChannel', () => {
  it('both ends know what was negotiated: the intersection of what each offered', async () => {
    const { source, dest } = await pair({ source: ['postcopy', 'zero-pages'], dest: ['zero-pages', 'setup-bitmap'] });
    expect([...source.capabilities]).toEqual(['zero-pages']);
    expect([...dest.channel.capabilities]).toEqual(['zero-pages']);
  });

  it('a consumer that falls behind pauses reading (TCP pushes back); it then gets every message, in order', async () => {
    const { source, dest } = await pair();
    const COUNT = 1000;
    const SIZE = 32 * 1024; // 32 KiB a message: 32 MB in all, far more than socket buffers hold
    // Missing is a destination → source message with a payload; its first word numbers it here.
    for (let seq = 0; seq < COUNT; seq++) {
      const bitmap = new Uint8Array(SIZE);
      new DataView(bitmap.buffer).setUint32(0, seq, true);
      dest.channel.send(msg.missing(bitmap));
    }
    const channel = source as FramedPeerChannel;
    await waitUntil(() => channel.readingPaused, { what: `the source to stop reading at ${INBOX_HIGH} queued` });
    // Paused: nothing more is read until the consumer catches up, so these figures are final.
    expect(channel.queued).toBeGreaterThanOrEqual(INBOX_HIGH);
    expect(channel.queued).toBeLessThan(INBOX_HIGH + 8);
    expect(source.bytesReceived).toBeLessThan(COUNT * SIZE);
    // Catch up: reading resumes, and everything arrives, in order.
    for (let seq = 0; seq < COUNT; seq++) {
      const message = await source.expect(MsgType.Missing);
      expect(new DataView(message.bitmap.buffer, message.bitmap.byteOffset).getUint32(0, true)).toBe(seq);
    }
    expect(channel.readingPaused).toBe(false);
  });
});
