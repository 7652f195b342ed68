/**
 * A migration's view of its data connection: send with backpressure, receive in order, and one
 * sticky first error (as QEMU's `qemu_file_set_error` keeps the first). Both migration state
 * machines talk to this interface only; FramedPeerChannel implements it over the protocol's
 * FramedSocket, so the state machines never see socket details.
 */
import type { MigrationError } from '../errors.ts';
import type { Capability, Message, MessageOf, PagesBatch } from '../protocol/index.ts';
import type { PeerIdentity } from './tls.ts';

export interface PeerChannel {
  /** The peer's agent id, from the handshake. */
  readonly remoteAgentId: string;
  /**
   * What both ends negotiated in the handshake. A feature not in here is not used (the
   * source does not send it, the destination refuses it).
   */
  readonly capabilities: ReadonlySet<Capability>;
  /** The peer's identity from its verified certificate (mutual TLS); undefined on plaintext. */
  readonly peer: PeerIdentity | undefined;
  /** Round-trip time measured during the handshake (Hello → Welcome), ms. */
  readonly handshakeRttMs: number;
  /**
   * Queue a message; false when the write buffer is over its high-water mark (await `drained()`).
   * `onWritten`, if given, is called once the channel no longer holds the message's payload
   * bytes (sent, or the channel torn down): a sender may reuse that memory from then on.
   */
  send(message: Message, onWritten?: () => void): boolean;
  /**
   * Queue a batch of pages; `views` are the raw pages' bytes in batch order (views of guest
   * memory, not copied). False when the caller should await `drained()` before the next batch.
   */
  sendPages(batch: PagesBatch, views: readonly Uint8Array[]): boolean;
  /** Resolves when the write buffer is below its high-water mark; rejects with the channel's error. */
  drained(signal?: AbortSignal): Promise<void>;
  /** The next message (heartbeats excluded). An Error frame from the peer rejects with its error. */
  next(signal?: AbortSignal): Promise<Message>;
  /**
   * Hand every message of `type` to `handler` as it arrives, instead of to next(): a section's
   * own traffic (a mirror's DiskAck, a post-copy DiskRequest) answered while the phase that reads
   * next() waits for something else. Returns the undo. The handler must not throw.
   */
  route<T extends Message['type']>(type: T, handler: (message: MessageOf<T>) => void): () => void;
  /** `next()`, insisting on one type; anything else rejects with ERR_UNEXPECTED_MESSAGE. */
  expect<T extends Message['type']>(type: T, signal?: AbortSignal): Promise<MessageOf<T>>;
  /** The first error the channel saw (connection lost, bad frame, peer abort), if any. */
  readonly failure: MigrationError | undefined;
  /** Resolves with the first error once the channel has failed (never, on a channel that does not fail). */
  whenFailed(): Promise<MigrationError>;
  /** Bytes handed to the socket so far, headers included. */
  readonly bytesSent: number;
  /** Bytes received so far, headers included. */
  readonly bytesReceived: number;
  /** Tell the peer why we stop (an Error frame, when the link still works), then close. Never throws. */
  abort(error: MigrationError): void;
  /** Flush and close. Never throws. */
  close(): Promise<void>;
}
