/**
 * A man in the middle of a plaintext data link that rewrites what the source sends — each frame
 * decoded, handed to `rewrite`, re-encoded — and passes the destination's bytes back untouched
 * (decoded too, to be watched, when asked).
 *
 * Unlike frame-relay.ts, which destroys both sides as soon as either
 * closes, it keeps TCP's half-close, as a plain link does: a side that ends (FIN) ends the way
 * on in that direction only, and the other direction goes on. A destination that refuses a frame
 * relies on that: it sends Error, ends its side and reads on, discarding, so that a source busy
 * writing pages reads the Error, with its code, instead of failing first on a reset connection
 * (EPIPE) — which is what a relay that destroys the source's side at the destination's FIN would
 * make it do. A socket error, or a side closed for good, destroys both sides (a reset, as a real
 * peer's would be). Each direction is backpressured: a side that cannot keep up pauses the other.
 * A stream that does not decode, or a `rewrite` that throws, cuts the connection.
 */
import net from 'node:net';
import { encodeFrame, FrameDecoder, type Message } from '@livemig/shared/protocol';
import { listenOnLoopback } from './frame-relay.ts';

export interface RewritingRelay {
  /** "127.0.0.1:PORT", to give the source as the destination's address. */
  address: string;
  /** How many messages `rewrite` changed. */
  readonly rewritten: number;
  close(): Promise<void>;
}

/**
 * `rewrite` returns the message to forward (the same object: forwarded as it was); `watchBack`,
 * when given, sees each message the destination sends (its bytes pass untouched all the same).
 */
export async function startRewritingRelay(
  target: { host: string; port: number },
  rewrite: (message: Message) => Message,
  watchBack?: (message: Message) => void,
): Promise<RewritingRelay> {
  let rewritten = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ ...target, allowHalfOpen: true });
    sockets.add(client).add(upstream);
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
    };
    /** Write to `to`; while it is full, stop reading `from`. */
    const forward = (from: net.Socket, to: net.Socket, bytes: Uint8Array): void => {
      if (!to.write(bytes) && !from.isPaused()) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    };
    const decoder = new FrameDecoder({ maxFrameBytes: 64 << 20 });
    client.on('data', (chunk: Buffer) => {
      try {
        decoder.feed(chunk, (message) => {
          const out = rewrite(message);
          if (out !== message) rewritten += 1;
          for (const part of encodeFrame(out)) forward(client, upstream, part);
        });
      } catch {
        cut();
      }
    });
    const back = watchBack ? new FrameDecoder({ maxFrameBytes: 64 << 20 }) : undefined;
    upstream.on('data', (chunk: Buffer) => {
      try {
        back?.feed(chunk, watchBack!);
      } catch {
        return cut();
      }
      forward(upstream, client, chunk);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    for (const socket of [client, upstream]) {
      socket.on('error', cut);
      socket.on('close', () => {
        sockets.delete(socket);
        cut();
      });
    }
  });
  const relay = await listenOnLoopback(server, sockets);
  return {
    address: relay.address,
    get rewritten() {
      return rewritten;
    },
    close: relay.close,
  };
}
