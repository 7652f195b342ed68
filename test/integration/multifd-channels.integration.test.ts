/**
 * The multifd data plane between two real processes (test/helpers/multifd-peer.ts): N = 2 channel
 * workers on each side, guest memory in SharedArrayBuffers, real loopback sockets. A round of 64 MiB
 * arrives whole (the barrier's verdict) and the destination's memory digest — from its workers'
 * page hashes and from the memory itself — equals the source's; garbage on a channel and a channel
 * cut mid-round are typed errors on both ends; and every channel worker has ended afterwards, however
 * it ended (the processes' threads counted back to what they had before the channels started).
 * (TLS on the channels is exercised, digests checked, by bench/multifd-pipeline.ts.)
 */
import net from 'node:net';
import { afterAll, describe, it } from 'vitest';
import { FrameParser, HEADER_BYTES, TYPE, frameHead } from '../../shared/src/multifd/channel-wire.mjs';
import { connectPair, digests, transferRound, withPair, type Pair } from '../helpers/multifd-pair.ts';
import { threadCount, waitForThreads } from '../helpers/threads.ts';

const MiB = 1024 * 1024;
const relays: net.Server[] = [];

afterAll(() => {
  for (const relay of relays.splice(0)) relay.close();
});

/**
 * A relay in front of one destination channel port. `garbage`: pass the channel's Attach frame,
 * then send 4 KiB of 0xff instead of anything else the source sends (at a frame boundary: the next
 * header is garbage). `cutAfter`: pass that many bytes towards the destination, then destroy both
 * connections (a link cut mid-round). Everything towards the source passes untouched.
 */
async function relayTo(port: number, rule: { garbage: true } | { cutAfter: number }): Promise<number> {
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.pipe(client);
    let passed = 0;
    let held = Buffer.alloc(0);
    let done = false;
    client.on('data', (chunk: Buffer) => {
      if (done) return;
      if ('garbage' in rule) {
        held = Buffer.concat([held, chunk]);
        if (held.length < HEADER_BYTES) return;
        const attachBytes = HEADER_BYTES + held.readUInt32LE(6);
        if (held.length < attachBytes) return;
        done = true;
        upstream.write(held.subarray(0, attachBytes));
        upstream.write(Buffer.alloc(4096, 0xff));
        return;
      }
      const take = Math.min(chunk.length, rule.cutAfter - passed);
      passed += take;
      if (!upstream.write(chunk.subarray(0, take))) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
      if (passed >= rule.cutAfter) {
        done = true;
        client.destroy();
        upstream.destroy();
      }
    });
  });
  relays.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** Both processes have exactly the threads they had before their channel workers started. */
async function noWorkerLeft(p: Pair): Promise<void> {
  await Promise.all([
    waitForThreads(p.source.pid, p.threads.source, 'the source without channel workers'),
    waitForThreads(p.dest.pid, p.threads.dest, 'the destination without channel workers'),
  ]);
}

describe('multifd channels between two processes', () => {
  it('refuses a wrong token, then moves 64 MiB over 2 channels: the round completes whole and exact, the digests agree, no worker is left', async ({
    expect,
  }) => {
    await withPair({ memoryBytes: 64 * MiB, channels: 2 }, async (pair) => {
      // The right channel and migration, a wrong token: an Error frame (ERR_FORBIDDEN), and the
      // port still takes the real source afterwards.
      const rogue = net.connect(pair.ports[0]!, '127.0.0.1');
      rogue.write(
        frameHead(TYPE.Attach, { migrationId: 'multifd-peer', channel: 'multifd', index: 0, token: 'f'.repeat(64) }, 0),
      );
      const answer = await new Promise<{ type: number; meta: Record<string, unknown> }>((resolve, reject) => {
        const parser = new FrameParser({ frame: () => undefined, end: (type, meta) => resolve({ type, meta }) });
        rogue.on('data', (chunk: Buffer) => parser.feed(chunk));
        rogue.on('close', () => reject(new Error('closed without an answer')));
      });
      expect(answer).toMatchObject({ type: TYPE.Error, meta: { code: 'ERR_FORBIDDEN' } });
      rogue.destroy();

      await connectPair(pair);
      // Two channel workers on each side while connected.
      expect(threadCount(pair.source.pid)).toBeGreaterThanOrEqual(pair.threads.source + 2);
      expect(threadCount(pair.dest.pid)).toBeGreaterThanOrEqual(pair.threads.dest + 2);

      const round0 = await transferRound(pair, 0);
      expect(round0.verdict).toMatchObject({ status: 'complete', round: 0, pages: 16384, exact: true, changed: [] });
      expect(round0.markers.map((m) => m.pages)).toEqual([8192, 8192]); // round-robin batches: an even split
      // A later round with a part of memory (a pre-copy round's dirty pages), over the same
      // channels, handed to the sender in 3 parts (as the engine's byte budget per call would).
      const round1 = await transferRound(pair, 1, 30_000, 1000, 3);
      expect(round1.verdict).toMatchObject({ status: 'complete', round: 1, pages: 1000, exact: true });

      const { source, dest } = await digests(pair);
      expect(dest.memory).toBe(source.memory);
      expect(dest.hashes).toBe(dest.memory); // the workers' page hashes compose to the memory digest
      expect(source.hashes).toBe(source.memory);

      // The engine's order: the receiver stops its workers first (a source closing a channel is
      // always an error to it), then the source. The source may hear of the closed channels
      // before its own close: a failure report the engine no longer listens to at that point.
      pair.dest.send({ type: 'close' });
      await pair.dest.expect('closed', 10_000);
      pair.source.send({ type: 'close' });
      await pair.source.next((m) => m.type === 'closed', 10_000, 'the source closed');
      await noWorkerLeft(pair);
    });
  });

  it('garbage on a channel: ERR_BAD_MAGIC at the destination, the source told, every worker ended on both sides', async ({
    expect,
  }) => {
    await withPair({ memoryBytes: 16 * MiB, channels: 2 }, async (pair) => {
      const bad = await relayTo(pair.ports[1]!, { garbage: true });
      pair.source.send({ type: 'connect', host: '127.0.0.1', ports: [pair.ports[0], bad], token: pair.token });
      const [destFailed, sourceFailed] = await Promise.all([
        pair.dest.next((m) => m.type === 'failed', 10_000, 'the destination failing'),
        pair.source.next((m) => m.type === 'failed', 10_000, 'the source failing'),
      ]);
      expect(destFailed.code).toBe('ERR_BAD_MAGIC');
      // The destination's Error frame (ERR_PEER_ABORTED), or its closing the other channel first.
      expect(['ERR_PEER_ABORTED', 'ERR_CONNECTION']).toContain(sourceFailed.code);
      await noWorkerLeft(pair);
    });
  });

  it('a channel cut mid-round: typed errors on both ends, the round never completes, every worker ended', async ({
    expect,
  }) => {
    await withPair({ memoryBytes: 32 * MiB, channels: 2 }, async (pair) => {
      const cutting = await relayTo(pair.ports[1]!, { cutAfter: 4 * MiB });
      await connectPair(pair, 10_000, [pair.ports[0]!, cutting]);
      const before = pair.dest.messages.length;
      pair.dest.send({ type: 'expect', round: 0 });
      pair.source.send({ type: 'round', round: 0 });
      const [destFailed, sourceFailed] = await Promise.all([
        pair.dest.next((m) => m.type === 'failed', 15_000, 'the destination failing'),
        pair.source.next((m) => m.type === 'failed', 15_000, 'the source failing'),
      ]);
      // Cut inside a Pages frame (4 MiB of a 16 MiB share): the destination knows the stream was truncated.
      expect(destFailed.code).toBe('ERR_TRUNCATED');
      expect(['ERR_CONNECTION', 'ERR_PEER_ABORTED']).toContain(sourceFailed.code);
      expect(pair.dest.messages.slice(before).some((m) => m.type === 'round')).toBe(false);
      await noWorkerLeft(pair);
    });
  });
});
