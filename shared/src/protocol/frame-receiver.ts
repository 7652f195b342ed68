/**
 * A FramedSocket's receive path — the bottleneck, see PERFORMANCE.md: bytes from the socket →
 * the FrameDecoder → messages for the connection, Pages bytes for the PageSink.
 *
 * The socket reads into one reused buffer (`onread`) and each read is fed straight to the
 * decoder, which copies only what it must keep and streams Pages bytes to the sink (one copy,
 * into guest memory). If the sink offers `pageTarget`, it goes one step further: once a Pages
 * frame's header and metadata have been read (exactly, so no payload byte lands in the scratch
 * buffer), each run of pages is read by the kernel straight into guest memory — no user-space
 * copy. A socket that could not be given `onread` (socket-handle.ts) feeds `'data'` chunks to
 * `onData` instead.
 *
 * Received Heartbeats stop here unless `emitHeartbeats` is set. Nothing in this file may throw
 * into Node's read loop: a decoding error fails the connection through the ReceiverLink, and
 * reading goes on (discarding) so the peer's close is still seen.
 */
import type net from 'node:net';
import { toMigrationError, type MigrationError } from '../errors.ts';
import { FrameDecoder } from './frame-decoder.ts';
import { decoderOptionsOf, type ResolvedFramedSocketOptions } from './framed-socket-options.ts';
import type { FramedSocketStats } from './framed-socket.ts';
import { MsgType, type Message } from './message-types.ts';

/** What the receive path needs from its connection. */
export interface ReceiverLink {
  /** True once the connection is closing: bytes are read and discarded. */
  isClosing(): boolean;
  /** True while reading is paused (the read callbacks then ask Node to stop). */
  isPaused(): boolean;
  /** Bytes arrived (keepalive). */
  received(): void;
  /** A decoded message for the connection's listeners. */
  message(message: Message): void;
  /** The stream is invalid or ended mid-frame: fail the connection (and tell the peer if asked). */
  fail(error: MigrationError, notifyPeer: boolean): void;
}

export class FrameReceiver {
  readonly decoder: FrameDecoder;
  readonly #opts: Readonly<ResolvedFramedSocketOptions>;
  readonly #stats: FramedSocketStats;
  readonly #link: ReceiverLink;
  /** onread mode: the scratch buffer, and whether the last buffer handed out was guest memory. */
  readonly #scratch: Buffer | undefined;
  #readInPlace = false;
  /** After an in-place read, read the next header and metadata exactly, to keep payloads in place. */
  #exactSections = false;

  /** With `readMode` 'onread' it owns a reused read buffer of `readBufferBytes`. */
  constructor(
    opts: Readonly<ResolvedFramedSocketOptions>,
    readMode: 'onread' | 'data',
    stats: FramedSocketStats,
    link: ReceiverLink,
  ) {
    this.#opts = opts;
    this.#stats = stats;
    this.#link = link;
    this.#scratch = readMode === 'onread' ? Buffer.allocUnsafe(opts.readBufferBytes) : undefined;
    this.decoder = new FrameDecoder({
      ...decoderOptionsOf(opts),
      ...(opts.sink === undefined ? {} : { sink: opts.sink }),
    });
  }

  /**
   * The `onread` option for the socket: Node asks `buffer()` where to read next (after every
   * read) and calls `callback` with what landed there. Usually that is the scratch buffer;
   * inside a run of pages whose sink offers `pageTarget`, it is guest memory itself.
   */
  onread(): net.OnReadOpts {
    return {
      buffer: () => this.#nextReadBuffer(),
      callback: (n: number, buf: Uint8Array) => (this.#readInPlace ? this.#onBytesInPlace(n) : this.#onBytes(buf, n)),
    };
  }

  /** A chunk from a `'data'` event. */
  onData(chunk: Buffer): void {
    this.#onBytes(chunk, chunk.length);
  }

  /** The peer ended the stream: an error if it ended inside a frame. */
  end(): void {
    if (this.#link.isClosing()) return;
    try {
      this.decoder.end();
    } catch (err) {
      this.#link.fail(toMigrationError(err), false);
    }
  }

  #nextReadBuffer(): Uint8Array {
    const scratch = this.#scratch!;
    this.#readInPlace = false;
    const min = this.#opts.minInPlaceBytes;
    if (min === 0 || this.#link.isClosing()) return scratch;
    // Called by Node's read loop: nothing may throw out of here (it would crash the process).
    try {
      const decoder = this.decoder;
      const target = decoder.readTarget(min);
      if (target !== undefined) {
        this.#readInPlace = true;
        this.#exactSections = true;
        return target;
      }
      if (this.#exactSections && decoder.state !== 'payload') {
        // Read just the header, then just the metadata, so the payload can go in place.
        return scratch.subarray(0, Math.max(1, Math.min(scratch.length, decoder.sectionRemaining)));
      }
    } catch (err) {
      this.#link.fail(toMigrationError(err), true);
    }
    this.#exactSections = false;
    return scratch;
  }

  #onBytesInPlace(length: number): boolean {
    if (this.#link.isClosing()) return true;
    this.#link.received();
    this.#stats.bytesReceived += length;
    try {
      this.decoder.consumedInPlace(length, this.#deliver);
    } catch (err) {
      this.#link.fail(toMigrationError(err), true);
      return true;
    }
    return !this.#link.isPaused();
  }

  #onBytes(chunk: Uint8Array, length: number): boolean {
    // Closing: keep reading (and discard) so the peer's end is seen and the socket closes.
    if (this.#link.isClosing()) return true;
    this.#link.received();
    this.#stats.bytesReceived += length;
    try {
      this.decoder.feed(chunk, this.#deliver, length);
    } catch (err) {
      this.#link.fail(toMigrationError(err), true);
      return true; // keep reading (discarding) until the peer closes or lingerMs passes
    }
    return !this.#link.isPaused();
  }

  readonly #deliver = (message: Message): void => {
    if (this.#link.isClosing()) return;
    if (message.type === MsgType.Heartbeat && !this.#opts.emitHeartbeats) return;
    this.#link.message(message);
  };
}
