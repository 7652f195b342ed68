/**
 * The source's side of the multifd data plane (issue 18): N channel workers
 * (source-channel-worker.mjs), each owning one connection to one of the destination's channel
 * ports, reading pages straight from guest memory and hashing them into a shared page-hash table.
 * The main thread only partitions each round (partition.ts) and hands each worker its share: it
 * never touches a page. sendRound() resolves when every channel has written its share and its
 * end-of-round marker (the destination's barrier, multifd-receiver.ts, says when they arrived).
 *
 * Any channel failing fails the whole sender (ChannelPool): every worker is stopped, pending and
 * later calls reject with the first error; the engine then fails the migration before handoff and
 * the VM runs on here.
 */
import type { GuestMemory } from '../vm/guest-memory.ts';
import type { ThreadRegistry } from '../vm/thread-registry.ts';
import { MigrationError, toMigrationError } from '../errors.ts';
import { ChannelPool } from './channel-pool.ts';
import { DEFAULT_BATCH_PAGES, checkChannels, partitionRound, type PartitionMode } from './partition.ts';
import type { ChannelMarker } from './round-barrier.ts';
import type { SharedPageHashes } from './shared-page-hashes.ts';

export interface MultifdSenderOptions {
  memory: GuestMemory;
  /** Where the source's page hashes go (its digest). */
  hashes: SharedPageHashes;
  /** The destination's data host, and its channel ports (one per channel: their count is N). */
  host: string;
  ports: readonly number[];
  migrationId: string;
  /** The one-time token the destination gave (SetupDone). */
  token: string;
  /** Pages per frame and per partition unit. @default 256 */
  /** TLS 1.3 with these credentials; `expectName`: the destination's certificate name. Absent: plaintext. */
  tls?: { ca: string; cert: string; key: string; expectName: string };
  /** @default 'batches' */
  mode?: PartitionMode;
  batchPages?: number;
  /** Connect + Attach accepted, per channel. @default 5000 */
  connectTimeoutMs?: number;
  /** A write blocked by backpressure longer than this fails the channel. @default 10000 */
  writeTimeoutMs?: number;
  /** Socket write buffer per channel. @default 4 MiB */
  highWaterMark?: number;
  threads?: ThreadRegistry;
  /**
   * Hash every page (the digest). `false` only to measure what hashing costs: the page-hash table
   * then stays as it was, so no digest can be checked. @default true
   */
  hashPages?: boolean;
}

/** What start() needs: everything but where to connect, and the number of channels instead. */
export type MultifdStartOptions = Omit<MultifdSenderOptions, 'ports' | 'token'> & { channels: number };

type FromSource =
  | { type: 'attached' }
  | { type: 'progress'; pages: number; bytes: number; wire: number }
  | { type: 'sent'; marker: ChannelMarker; wire: number }
  | { type: 'stopped' };

/** What one channel has written so far (its worker's progress reports). */
export interface ChannelTotals {
  /** Pages written (raw and zero). */
  pages: number;
  /** Page payload bytes (raw pages only). */
  bytes: number;
  /** Bytes on the wire: frame headers, metadata, payloads. */
  wire: number;
}

export class MultifdSender {
  readonly channels: number;
  readonly #pool: ChannelPool<FromSource>;
  readonly #mode: PartitionMode;
  readonly #batchPages: number;
  readonly #attached: boolean[];
  /** Markers written, per channel, by round. */
  readonly #sent: Map<number, ChannelMarker>[];
  /** The round being dealt out, and the channel its next batch goes to. */
  #round = { round: -1, nextChannel: 0 };
  /** Per channel: what its worker reported written so far. */
  readonly #totals: ChannelTotals[];
  /** Pages dealt to the workers and not yet reported written (the window, room()). */
  #queued = 0;

  readonly #connectTimeoutMs: number;

  private constructor(options: MultifdStartOptions & { ports?: readonly number[]; token?: string }) {
    this.channels = options.ports?.length ?? options.channels;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    checkChannels(this.channels);
    this.#mode = options.mode ?? 'batches';
    this.#batchPages = options.batchPages ?? DEFAULT_BATCH_PAGES;
    this.#attached = new Array<boolean>(this.channels).fill(false);
    this.#sent = Array.from({ length: this.channels }, () => new Map());
    this.#totals = Array.from({ length: this.channels }, () => ({ pages: 0, bytes: 0, wire: 0 }));
    const layout = options.memory.layout;
    this.#pool = new ChannelPool<FromSource>(
      new URL('./source-channel-worker.mjs', import.meta.url),
      (index, thread) => ({
        host: options.host,
        port: options.ports?.[index] ?? null,
        tls: options.tls ?? null,
        token: options.token ?? null,
        migrationId: options.migrationId,
        index,
        memory: layout,
        hashes: options.hashes.buffer,
        batchPages: this.#batchPages,
        connectTimeoutMs: options.connectTimeoutMs ?? 5000,
        writeTimeoutMs: options.writeTimeoutMs ?? 10_000,
        highWaterMark: options.highWaterMark ?? 4 * 1024 * 1024,
        thread,
        hashPages: options.hashPages !== false,
      }),
      this.channels,
      'multifd-send',
      options.threads,
    );
    this.#pool.onMessage = (index, message) => {
      const totals = this.#totals[index]!;
      if (message.type === 'attached') this.#attached[index] = true;
      else if (message.type === 'progress') {
        totals.pages += message.pages;
        totals.bytes += message.bytes;
        totals.wire += message.wire;
        this.#queued -= message.pages;
      } else if (message.type === 'sent') {
        totals.wire += message.wire;
        this.#sent[index]!.set(message.marker.round, message.marker);
      }
    };
  }

  /** Start N workers and connect every channel; rejects (all stopped) if any cannot attach in time. */
  static async connect(options: MultifdSenderOptions): Promise<MultifdSender> {
    const sender = new MultifdSender({ ...options, channels: options.ports.length });
    await sender.#attachAll();
    return sender;
  }

  /**
   * Start N workers that load and then wait to be told where to connect (attach()): the engine
   * starts them beside Setup, so that their start-up (a fresh V8 isolate and its modules: hundreds
   * of ms on a busy machine) overlaps the destination building its VM.
   */
  static start(options: MultifdStartOptions): MultifdSender {
    return new MultifdSender(options);
  }

  /** Connect every channel of a started sender; rejects (all stopped) if any cannot attach in time. */
  async attach(ports: readonly number[], token: string): Promise<void> {
    if (ports.length !== this.channels) {
      throw new MigrationError('ERR_BAD_METADATA', `${ports.length} multifd ports for ${this.channels} channels`);
    }
    ports.forEach((port, i) => this.#pool.post(i, { type: 'connect', port, token }));
    await this.#attachAll();
  }

  async #attachAll(): Promise<void> {
    try {
      await this.#pool.waitUntil(
        () => this.#attached.every(Boolean),
        this.#connectTimeoutMs + 5000,
        'attaching the multifd channels',
      );
    } catch (error) {
      this.#pool.fail(toMigrationError(error));
      await this.stop();
      throw error;
    }
  }

  /** What each channel has written so far, channel i's at i (copies). */
  get totals(): ChannelTotals[] {
    return this.#totals.map((t) => ({ ...t }));
  }

  /** Bytes every channel put on the wire so far. */
  get wireBytes(): number {
    return this.#totals.reduce((sum, t) => sum + t.wire, 0);
  }

  /** Pages dealt out (sendPages) that the workers have not reported written yet. */
  get queuedPages(): number {
    return this.#queued;
  }

  /**
   * Resolves once at most `maxQueuedPages` pages dealt out are still unwritten: the engine deals
   * a round out part by part (its byte budget), and this keeps it from dealing the whole round at
   * once — the bandwidth cap, a request to switch mid-round and the round's figures need the
   * channels' real pace. Rejects with the first channel error, or ERR_TIMEOUT after `timeoutMs`
   * without the room (a blocked write fails its channel sooner: writeTimeoutMs).
   */
  room(maxQueuedPages: number, timeoutMs = 60_000): Promise<void> {
    return this.#pool.waitUntil(() => this.#queued <= maxQueuedPages, timeoutMs, 'the multifd channels writing');
  }

  /** The first error of any channel. */
  get error(): MigrationError | undefined {
    return this.#pool.error;
  }

  set onFailure(listener: ((error: MigrationError) => void) | undefined) {
    this.#pool.onFailure = listener;
  }

  /**
   * Send more of round `round`'s pages over the channels, each channel its share (partition.ts;
   * `pages` is copied), dealt on from where the previous part of the round stopped. Returns at once:
   * the workers send (the engine's byte budget per iterate() maps to a part).
   */
  sendPages(round: number, pages: Uint32Array): void {
    if (this.#pool.error) throw this.#pool.error;
    if (round !== this.#round.round) this.#round = { round, nextChannel: 0 };
    const shares = partitionRound(pages, this.channels, {
      mode: this.#mode,
      batchPages: this.#batchPages,
      firstChannel: this.#round.nextChannel,
    });
    const batches = Math.ceil(pages.length / this.#batchPages);
    this.#round.nextChannel = (this.#round.nextChannel + batches) % this.channels;
    shares.forEach((share, i) => {
      if (share.length === 0) return;
      this.#queued += share.length;
      this.#pool.post(i, { type: 'pages', round, pages: share }, [share.buffer as ArrayBuffer]);
    });
  }

  /**
   * Round `round` is all given (sendPages): every channel writes its marker after its share;
   * resolves with the markers once every channel has. `stable`: the VM was paused for this whole
   * round (its content must then arrive exactly).
   */
  async endRound(round: number, options: { stable?: boolean; timeoutMs?: number } = {}): Promise<ChannelMarker[]> {
    for (let i = 0; i < this.channels; i++) this.#pool.post(i, { type: 'end', round, stable: options.stable === true });
    await this.#pool.waitUntil(
      () => this.#sent.every((sent) => sent.has(round)),
      options.timeoutMs ?? 60_000,
      `sending round ${round}`,
    );
    return this.#sent.map((sent) => {
      const marker = sent.get(round)!;
      sent.delete(round);
      return marker;
    });
  }

  /** A whole round at once: sendPages, then endRound. */
  sendRound(
    round: number,
    pages: Uint32Array,
    options: { stable?: boolean; timeoutMs?: number } = {},
  ): Promise<ChannelMarker[]> {
    this.sendPages(round, pages);
    return this.endRound(round, options);
  }

  /** Close every channel and end every worker; resolves once all threads have exited. Never throws. */
  stop(): Promise<void> {
    return this.#pool.stop();
  }
}
