/**
 * The destination's side of the multifd data plane (issue 18): N channel workers
 * (dest-channel-worker.mjs), each listening on an ephemeral port of the data address (Node cannot
 * hand a socket to a worker, so the worker listens itself, as the post-copy fault thread does),
 * accepting only its channel's Attach with the one-time token (sent to the source in SetupDone), and
 * writing pages straight into guest memory, hashing them into the shared page-hash table and setting
 * their bits in the shared received map. The main thread keeps the round barrier (round-barrier.ts):
 * roundComplete(r) resolves once every channel has delivered its whole share of round r.
 *
 * Any channel failing — garbage, a cut, a deadline, a share that did not arrive whole — fails the
 * receiver as a whole (ChannelPool): every worker stopped, every wait rejected with that first error.
 */
import { randomBytes } from 'node:crypto';
import type { GuestMemory } from '../vm/guest-memory.ts';
import type { ThreadRegistry } from '../vm/thread-registry.ts';
import { MigrationError, toMigrationError } from '../errors.ts';
import { ChannelPool } from './channel-pool.ts';
import { checkChannels } from './partition.ts';
import { RoundBarrier, type ChannelCount, type ChannelMarker, type RoundVerdict } from './round-barrier.ts';
import type { SharedPageHashes } from './shared-page-hashes.ts';

export interface MultifdReceiverOptions {
  memory: GuestMemory;
  /** Where the received pages' hashes go (the destination's digest). */
  hashes: SharedPageHashes;
  /** The data address's host: each channel listens on an ephemeral port there. */
  host: string;
  channels: number;
  migrationId: string;
  /** TLS 1.3 with these credentials, a client certificate named `sourceName` required. Absent: plaintext. */
  tls?: { ca: string; cert: string; key: string };
  sourceName?: string;
  /** From listening to the channel's Attach. @default 10000 */
  attachTimeoutMs?: number;
  /** A frame must be received whole within this of its first byte. @default 10000 */
  frameTimeoutMs?: number;
  threads?: ThreadRegistry;
  /**
   * Hash every page (the digest). `false` only to measure what hashing costs: the page-hash table
   * then stays as it was, so no digest can be checked. @default true
   */
  hashPages?: boolean;
}

type FromDest =
  | { type: 'listening'; port: number }
  | { type: 'listen-failed'; message: string }
  | { type: 'refused'; code: string; message: string }
  | { type: 'attached' }
  | { type: 'round'; marker: ChannelMarker; tally: ChannelCount }
  | { type: 'stopped' };

export class MultifdReceiver {
  readonly channels: number;
  /** The token the source's Attach must carry (SetupDone). */
  readonly token: string;
  /** 1 bit per page (Int32 words), set by the workers for every page they wrote. */
  readonly received: SharedArrayBuffer;
  readonly #words: Int32Array;
  readonly #pool: ChannelPool<FromDest>;
  readonly #ports: number[];
  readonly #attached: boolean[];
  readonly #barrier: RoundBarrier;
  readonly #complete = new Map<number, Extract<RoundVerdict, { status: 'complete' }>>();
  /** Per channel: pages and page payload bytes of the rounds it completed. */
  readonly #totals: { pages: number; bytes: number }[];
  /** Connections refused so far (wrong token, garbage, unauthenticated), for the logs. */
  readonly refusals: { code: string; message: string }[] = [];
  /** Told of each connection refused (the agent logs it). */
  onRefused: ((refusal: { code: string; message: string }) => void) | undefined;

  private constructor(options: MultifdReceiverOptions) {
    checkChannels(options.channels);
    this.channels = options.channels;
    this.token = randomBytes(32).toString('hex');
    this.received = new SharedArrayBuffer(Math.ceil(options.memory.pageCount / 32) * 4);
    this.#words = new Int32Array(this.received);
    this.#ports = new Array<number>(this.channels).fill(0);
    this.#attached = new Array<boolean>(this.channels).fill(false);
    this.#barrier = new RoundBarrier(this.channels);
    this.#totals = Array.from({ length: this.channels }, () => ({ pages: 0, bytes: 0 }));
    const layout = options.memory.layout;
    this.#pool = new ChannelPool<FromDest>(
      new URL('./dest-channel-worker.mjs', import.meta.url),
      (index, thread) => ({
        host: options.host,
        port: 0,
        tls: options.tls ?? null,
        sourceName: options.sourceName ?? null,
        token: this.token,
        migrationId: options.migrationId,
        index,
        memory: layout,
        hashes: options.hashes.buffer,
        received: this.received,
        attachTimeoutMs: options.attachTimeoutMs ?? 10_000,
        frameTimeoutMs: options.frameTimeoutMs ?? 10_000,
        thread,
        hashPages: options.hashPages !== false,
      }),
      this.channels,
      'multifd-recv',
      options.threads,
    );
    this.#pool.onMessage = (index, message) => this.#onMessage(index, message);
  }

  /** Start N workers; resolves once every one listens (ports known). */
  static async listen(options: MultifdReceiverOptions): Promise<MultifdReceiver> {
    const receiver = new MultifdReceiver(options);
    try {
      await receiver.#pool.waitUntil(
        () => receiver.#ports.every((port) => port > 0),
        10_000,
        'the multifd channels listening',
      );
      return receiver;
    } catch (error) {
      receiver.#pool.fail(toMigrationError(error));
      await receiver.stop();
      throw error;
    }
  }

  /** The channels' ports, channel i's at i (SetupDone). */
  get ports(): readonly number[] {
    return this.#ports;
  }

  /** Pages and payload bytes each channel delivered in the rounds it ended, channel i's at i (copies). */
  get totals(): { pages: number; bytes: number }[] {
    return this.#totals.map((t) => ({ ...t }));
  }

  /** True once any channel wrote any page (the received map has a bit set). */
  get anyPageReceived(): boolean {
    const words = this.#words;
    for (let i = 0; i < words.length; i++) if (Atomics.load(words, i) !== 0) return true;
    return false;
  }

  /** True when a channel wrote page `page` (it came here over multifd at least once). */
  hasReceived(page: number): boolean {
    return (Atomics.load(this.#words, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  get error(): MigrationError | undefined {
    return this.#pool.error;
  }

  set onFailure(listener: ((error: MigrationError) => void) | undefined) {
    this.#pool.onFailure = listener;
  }

  /** Channels attached so far. */
  get attachedCount(): number {
    return this.#attached.filter(Boolean).length;
  }

  /** Resolves once every channel is attached. */
  attached(timeoutMs = 10_000): Promise<void> {
    return this.#pool.waitUntil(
      () => this.#attached.every(Boolean),
      timeoutMs,
      'the source attaching every multifd channel',
    );
  }

  /**
   * Resolves once every channel has delivered its whole share of round `round` (the barrier), with
   * the round's totals and whether its content was exact; rejects with the first channel error.
   */
  async roundComplete(round: number, timeoutMs = 60_000): Promise<Extract<RoundVerdict, { status: 'complete' }>> {
    await this.#pool.waitUntil(() => this.#complete.has(round), timeoutMs, `round ${round} on every multifd channel`);
    const verdict = this.#complete.get(round)!;
    this.#complete.delete(round);
    return verdict;
  }

  /**
   * The last round is in: close every channel and resolve once no worker writes into guest memory
   * any more (before the destination verifies and runs the VM). The threads end soon after;
   * stop() waits for that. Never throws.
   */
  quiesce(): Promise<void> {
    return this.#pool.quiesce();
  }

  /** Close every channel and end every worker; resolves once all threads have exited. Never throws. */
  stop(): Promise<void> {
    return this.#pool.stop();
  }

  #onMessage(index: number, message: FromDest): void {
    switch (message.type) {
      case 'listening':
        this.#ports[index] = message.port;
        return;
      case 'listen-failed':
        this.#pool.fail(new MigrationError('ERR_ADDRESS', `channel ${index} could not listen: ${message.message}`));
        return;
      case 'refused':
        if (this.refusals.length < 64) this.refusals.push({ code: message.code, message: message.message });
        this.onRefused?.({ code: message.code, message: message.message });
        return;
      case 'attached':
        this.#attached[index] = true;
        return;
      case 'round':
        try {
          const verdict = this.#barrier.arrive(index, message.marker, message.tally);
          this.#totals[index]!.pages += message.tally.pages;
          this.#totals[index]!.bytes += message.tally.bytes;
          if (verdict.status === 'complete') this.#complete.set(verdict.round, verdict);
        } catch (error) {
          this.#pool.fail(toMigrationError(error));
        }
        return;
      default:
    }
  }
}
