/**
 * The data connections of one outgoing migration: `main` (Setup, pages, state, handoff) and,
 * for post-copy, `fault` (PageRequests and their answers, never behind bulk pages). Either
 * may be replaced on post-copy recovery; the wire bytes of connections already closed are kept
 * so the report counts every byte this migration put on a wire.
 *
 * With `fault-thread` the destination's SetupDone named the port of its fault thread and a
 * token: the fault channel connects there (same host, same TLS identity check) and attaches with
 * the token. On a reconnect the thread's port is tried first; a destination whose thread is gone
 * refuses the connection, and the fault channel then attaches to the main listener as without
 * the capability.
 *
 * With a source fault worker (fault-worker.ts) the fault channel to the destination's fault thread
 * is the worker's: it connects, attaches and answers there, off this thread. Should the worker
 * die, the next fault channel (recovery reconnects) is this thread's again.
 */
import { MigrationError, toMigrationError } from '@livemig/shared';
import { msg, type PeerChannel } from '@livemig/shared/channel';
import type { Capability } from '@livemig/shared/protocol';
import type { SourceFaultWorker } from './fault-worker.ts';

/** Connect to the destination: its data port, or `port` on the same host (the fault thread's). */
export type Connect = (signal: AbortSignal, port?: number) => Promise<PeerChannel>;

/** Where the destination's fault thread listens (SetupDone's faultPort and faultToken). */
export interface FaultThreadAddress {
  port: number;
  token: string;
}

export class ChannelSet {
  readonly #connect: Connect;
  readonly #signal: AbortSignal;
  readonly #migrationId: string;
  #main: PeerChannel | undefined;
  #fault: PeerChannel | undefined;
  #faultThread: FaultThreadAddress | undefined;
  #faultOpening: Promise<void> | undefined;
  /** The fault channel's opening (openFaultSoon, openFaultWhen) began and has not settled yet. */
  #faultPending = false;
  /** `fault-on-demand`: the destination was asked for its fault thread (openFaultWhen). */
  #faultRequested = false;
  /** Aborted by close(): an opening still waiting to hear where to connect stops waiting. */
  readonly #closing = new AbortController();
  /** The source's fault worker, when one was started, and whether it holds the fault channel now. */
  #worker: SourceFaultWorker | undefined;
  #faultInWorker = false;
  /** Wire bytes of connections already closed or replaced. */
  #earlierBytes = 0;
  /** Wire bytes of this migration's other connections (parallel bulk channels, multifd.ts). */
  #otherWire: (() => number) | undefined;

  constructor(connect: Connect, signal: AbortSignal, migrationId: string) {
    this.#connect = connect;
    this.#signal = signal;
    this.#migrationId = migrationId;
  }

  /** The main connection; ERR_CONNECTION when there is none (closed, or broken and not yet replaced). */
  get main(): PeerChannel {
    if (!this.#main) throw new MigrationError('ERR_CONNECTION', 'no data connection to the destination');
    return this.#main;
  }

  get fault(): PeerChannel {
    if (!this.#fault) throw new MigrationError('ERR_CONNECTION', 'no fault connection to the destination');
    return this.#fault;
  }

  /** What the main connection negotiated (empty before it exists). */
  get capabilities(): ReadonlySet<Capability> {
    return this.#main?.capabilities ?? new Set();
  }

  /** Connect the main channel (handshake included). */
  async openMain(): Promise<PeerChannel> {
    this.#main = await this.#connect(this.#signal);
    return this.#main;
  }

  /** SetupDone named the destination's fault thread: the fault channel goes there. */
  useFaultThread(address: FaultThreadAddress): void {
    this.#faultThread = address;
  }

  /** True when the fault channel goes to the destination's fault thread. */
  get faultThread(): boolean {
    return this.#faultThread !== undefined;
  }

  /**
   * Post-copy: a second connection for faults, joined to this migration by Attach — at the
   * destination's fault thread when it has one, else (or when its port refuses) at the main port.
   */
  async openFault(): Promise<void> {
    const thread = this.#faultThread;
    if (thread) {
      try {
        if (await this.#openInWorker(thread)) return;
        this.#joinFault(await this.#connect(this.#signal, thread.port), thread.token);
        return;
      } catch (error) {
        if (this.#signal.aborted || !refusedConnection(error)) throw error;
        this.#faultThread = undefined; // the thread is gone: never again for this migration
      }
    }
    this.#joinFault(await this.#connect(this.#signal));
  }

  /** The source's fault worker to use for the fault channel to the destination's fault thread (fault-worker.ts). */
  useFaultWorker(worker: SourceFaultWorker): void {
    this.#worker = worker;
  }

  /** The fault worker when it holds the fault channel (serve it there), else undefined (this thread's `fault`). */
  get faultWorker(): SourceFaultWorker | undefined {
    return this.#faultInWorker ? this.#worker : undefined;
  }

  /** End the fault worker, if one was started (the migration is over). Never throws. */
  async stopFaultWorker(): Promise<void> {
    await this.#worker?.stop();
  }

  /** The fault worker opens the channel to the thread; false when there is none or it died (this thread opens it then). */
  async #openInWorker(thread: FaultThreadAddress): Promise<boolean> {
    const worker = this.#worker;
    if (!worker?.alive) return false;
    try {
      await worker.open(this.#migrationId, thread.port, thread.token);
    } catch (error) {
      if (this.#signal.aborted || toMigrationError(error).code !== 'ERR_FAULT_THREAD') throw error;
      return false;
    }
    this.#faultInWorker = true;
    return true;
  }

  /**
   * Hybrid with a fault thread: open the fault channel in the background — the thread answers
   * its handshake once its TypeScript half has loaded (hundreds of ms on a busy machine), which
   * round 0 need not wait for. `faultReady()` waits for it before the switch to post-copy.
   */
  openFaultSoon(): void {
    this.#inBackground(this.openFault());
  }

  /**
   * `fault-on-demand`: open the fault channel in the background once `address` says where the
   * destination's fault thread listens (its answer to FaultOpen; undefined: at the main port).
   * `faultReady()` waits for it. `address` must settle once `closing` aborts (fault-on-demand.ts
   * waits on that signal), so close() never waits for an answer that is not coming.
   */
  openFaultWhen(address: Promise<FaultThreadAddress | undefined>): void {
    this.#faultRequested = true;
    this.#inBackground(
      (async () => {
        const thread = await address;
        if (thread) this.#faultThread = thread;
        await this.openFault();
      })(),
    );
  }

  /** Aborted once close() began: a wait that only matters while the channels are open stops then. */
  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  /** True once openFaultWhen asked the destination for its fault thread. */
  get faultRequested(): boolean {
    return this.#faultRequested;
  }

  /** True while the fault channel is opening in the background (a switch to post-copy waits for it). */
  get faultPending(): boolean {
    return this.#faultPending;
  }

  #inBackground(opening: Promise<void>): void {
    this.#faultPending = true;
    this.#faultOpening = opening.finally(() => (this.#faultPending = false));
    this.#faultOpening.catch(() => {}); // faultReady() reports it
  }

  /** The fault channel opened (openFault or openFaultSoon), or why it could not be. */
  async faultReady(): Promise<void> {
    await this.#faultOpening;
  }

  #joinFault(fault: PeerChannel, token?: string): PeerChannel {
    fault.send(msg.attach(this.#migrationId, 'fault', token));
    this.#fault = fault;
    return fault;
  }

  /** Post-copy recovery: a new main connection that resumes this migration (Attach resume). */
  async reattachMain(): Promise<PeerChannel> {
    const main = await this.#connect(this.#signal);
    this.#main = main;
    main.send(msg.attach(this.#migrationId, 'resume'));
    return main;
  }

  /** The main connection's bytes sent so far; undefined while there is none (closed, or broken and not yet replaced). */
  get mainBytesSent(): number | undefined {
    return this.#main?.bytesSent;
  }

  /** Every byte this migration put on a wire so far, headers included. */
  get wireBytes(): number {
    return (
      this.#earlierBytes +
      (this.#main?.bytesSent ?? 0) +
      (this.#fault?.bytesSent ?? 0) +
      (this.#worker?.wireBytes ?? 0) +
      (this.#otherWire?.() ?? 0)
    );
  }

  /** Count the wire bytes of connections this set does not own (parallel bulk channels) in wireBytes. */
  countWireOf(bytes: () => number): void {
    this.#otherWire = bytes;
  }

  /** Close both: flushed when there is no error, aborted (telling the peer why) when there is. */
  async close(error?: MigrationError): Promise<void> {
    // A fault channel still opening (openFaultSoon) is closed with the rest once it is there.
    this.#closing.abort();
    const opening = this.#faultOpening;
    this.#faultOpening = undefined;
    await opening?.catch(() => {});
    for (const channel of [this.#main, this.#fault]) {
      if (!channel) continue;
      this.#earlierBytes += channel.bytesSent;
      if (error) channel.abort(error);
      else await channel.close();
    }
    this.#main = undefined;
    this.#fault = undefined;
    if (this.#faultInWorker) await this.#worker?.closeChannel(error);
    this.#faultInWorker = false;
  }
}

/** A connection refused outright (nobody listens on the port any more): not worth retrying there. */
function refusedConnection(error: unknown): boolean {
  const failure = toMigrationError(error);
  const cause = failure.cause as NodeJS.ErrnoException | undefined;
  return cause?.code === 'ECONNREFUSED' || /ECONNREFUSED/.test(failure.message);
}
