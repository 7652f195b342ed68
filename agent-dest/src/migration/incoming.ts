/**
 * One incoming migration: the driver around the pure receiver (receiver.ts). It reads the next
 * message, asks `step` what it means here, and carries out the one action it returns — build
 * the VM, acknowledge a round, load a state section, verify and say Ready, resume, verify the
 * post-copy digest — so every refusal happens before anything changes. Post-copy paging is
 * postcopy-paging.ts; the empty VM is built by build-vm.ts; sections.ts loads and hashes.
 *
 * Deadline: from SetupDone (the VM is built here; the source's turn) to the first page, or any
 * message after Setup, at most `setupTimeoutMs` — heartbeats do not count — so a peer that sets
 * up and then only keeps the link alive cannot hold its share of the guest-memory budget: the
 * half-built VM is discarded, its memory returned. (The build itself is this agent's time.)
 *
 * Ownership: until Handoff this side's copy is the source's to discard — any failure removes
 * it. After Handoff the VM runs here: pre-copy — it has everything; post-copy — a broken link
 * parks it in postcopy-paused (blocking on absent pages) until the source reconnects.
 */
import type { Logger } from 'pino';
import { DEFAULT_SETUP_TIMEOUT_MS, MigrationError, toMigrationError } from '@livemig/shared';
import { msg, type PageApplier, type PeerChannel, type PeerIdentity } from '@livemig/shared/channel';
import type { ControlEvents, EventName, IncomingInfo } from '@livemig/shared/control';
import type { VmHost } from '@livemig/shared/host';
import { negotiatedEncodings, type Message, type RecordMsg, type SetupMsg } from '@livemig/shared/protocol';
import {
  cancelCode,
  countersignRecord,
  observedRefusal,
  parseRecord,
  RECORD_TIMEOUT_MS,
  recordBytes,
  signatureRefusal,
  SIGNATURE_ALGORITHM,
  ticketIdOf,
  vmSpecHash,
  type Countersignature,
  type MigrationRecord,
  type ObservedMigration,
  type RecordParty,
  type RecordSignature,
  type SignedRecord,
  type Signer,
} from '@livemig/shared/security';
import { prefaultReport, threadsBetween } from '@livemig/shared/report';
import { Bitmap, processThreads, type Prefault, type ToyVm } from '@livemig/shared/vm';
import { buildIncomingVm, resumeHere } from './build-vm.ts';
import { MainLink } from './main-link.ts';
import { PostcopyPaging } from './postcopy-paging.ts';
import { advance, initialState, step, type Action, type InternalEvent, type ReceiverState } from './receiver.ts';
import { DiskLoad } from './disk-load.ts';
import { FaultThread, type FaultThreadConfig } from './fault-thread.ts';
import { MultifdReceiver, type SharedPageHashes } from '@livemig/shared/multifd';
import { offerHostContent } from './host-content.ts';
import { IncomingSections } from './sections.ts';
import { DEST_DISCARDS_ON_FAILURE, type DestStatus } from './status.ts';

/** RoundEnd to every parallel channel's marker of that round: the channels' tails are socket buffers. */
const MULTIFD_ROUND_TIMEOUT_MS = 60_000;

export interface IncomingComponents {
  host: VmHost;
  channel: PeerChannel;
  /** Where the channel's page sink writes; attached to the VM's memory at Setup. */
  applier: PageApplier;
  logger: Logger;
  emit: <E extends EventName>(event: E, data: ControlEvents[E]) => void;
  /**
   * May this Setup, from this peer, build a VM here? Throws the refusal (e.g. a ticket that is
   * missing, expired, replayed or bound to another VM or source); runs once the Setup is known to
   * fit (name, guest-memory budget), before any memory is reserved. @default everything is admitted (plaintext agents on loopback)
   */
  admit?: (setup: SetupMsg, peer: PeerIdentity | undefined) => void;
  /** This agent's key: with `signed-record` negotiated, the source's record is countersigned with it. */
  signer?: Signer;
  /** Keep a record this side countersigned or refused (the audit log, fsynced) before answering. */
  keepRecord?: (signed: SignedRecord) => Promise<void>;
  /** Hears each post-copy fault's latency in ms, vCPU blocked → page installed (the agent's metrics). */
  onFaultLatency?: (ms: number) => void;
  /** Where a post-copy fault thread listens (`fault-thread`). @default none: faults on the main thread */
  faultThread?: FaultThreadConfig;
}

export interface IncomingOptions {
  /** Largest VM accepted. @default 16 GiB */
  maxMemoryBytes: number;
  /** From SetupDone to the first page; heartbeats do not extend it. @default 10000 */
  setupTimeoutMs?: number;
}

/** What exists once Setup built the VM. */
interface Built {
  name: string;
  vm: ToyVm;
  sections: IncomingSections;
  paging: PostcopyPaging;
  prefault: Prefault | undefined;
  /** Parallel bulk channels (multifd), when Setup asked for them and they listen. */
  multifd: MultifdReceiver | undefined;
}

export class IncomingMigration {
  readonly #c: IncomingComponents;
  readonly #options: IncomingOptions;
  #state: ReceiverState;
  readonly #link: MainLink;
  #migrationId = '';
  #built: Built | undefined;
  #resumedAt = { steps: 0, at: 0 };
  /** The setup deadline's timer, and the messages handled so far (Setup is the first). */
  #setupDeadline: NodeJS.Timeout | undefined;
  #handled = 0;
  #setup: SetupMsg | undefined;
  /** The digests as they were exchanged: the source's as they arrived, this side's own. */
  readonly #digests: ObservedMigration['digests'] = { source: {}, dest: {} };
  /** How the migration ended here, for the record's check. */
  #ended: ObservedMigration['ended'] = { by: 'completion' };
  /** performance.now() when Setup arrived (this object is made for it) and when run() ended. */
  readonly #startedAt = performance.now();
  #endedAt: number | undefined;
  /** A disk in post-copy: its DiskAbsent came (before PostcopyStart). */
  #diskAbsentCame = false;
  /** This process's threads as Setup arrived, for the report's CPU time per thread (thread-registry.ts). */
  readonly #threadsAtStart = processThreads.snapshot();
  /** `fault-on-demand`: the fault thread FaultOpen asked for, while it starts (never rejects). */
  #faultThreadStarting: Promise<void> | undefined;
  /** performance.now() when the first full pass had arrived (round 0's end; post-copy: every page present). */
  #firstPassAt: number | undefined;
  /** The parallel channels were closed after the last pre-copy round: their ending is no failure. */
  #multifdQuiet = false;
  /** Pre-copy: this side's figures, taken once Ready is sent (off the downtime's path), for Resumed. */
  #finalStats: Record<string, unknown> | undefined;

  constructor(components: IncomingComponents, options: IncomingOptions) {
    this.#c = components;
    this.#options = options;
    this.#link = new MainLink(components.channel);
    const caps = components.channel.capabilities;
    this.#state = initialState({
      postcopyAllowed: caps.has('postcopy'),
      recordAllowed: caps.has('signed-record'),
      faultOnDemand: caps.has('fault-on-demand') && caps.has('fault-thread'),
    });
  }

  get status(): DestStatus {
    return this.#state.status;
  }

  get migrationId(): string {
    return this.#migrationId;
  }

  /** How it ended, once run() resolved (undefined before): completed, cancelled by the source, or failed. */
  get outcome(): 'completed' | 'cancelled' | 'failed' | undefined {
    if (this.status === 'completed') return 'completed';
    if (this.status !== 'failed') return undefined;
    return this.#state.cancelled ? 'cancelled' : 'failed';
  }

  /** Run to the end, starting from the Setup the daemon read. Never throws. */
  async run(setup: SetupMsg): Promise<void> {
    try {
      this.#migrationId = setup.migrationId;
      this.#setup = setup;
      await this.#setupWithinDeadline(setup);
      while (this.status !== 'running' && this.status !== 'postcopy')
        await this.#handle(await this.#link.channel.next());
      if (this.status === 'running') this.#event('resumed');
      else await this.#postcopy();
      await this.#exchangeRecord();
      await this.#link.channel.close();
    } catch (caught) {
      await this.#fail(toMigrationError(caught));
    } finally {
      this.#endedAt = performance.now();
      clearTimeout(this.#setupDeadline);
      this.#dropHostContent();
      await this.#faultThreadStarting; // one started on demand is stopped with the rest, once it is there
      await this.#built?.paging.stop();
      await this.#built?.prefault?.stop();
      await this.#built?.multifd?.stop();
    }
  }

  /**
   * Setup, then the deadline for what follows SetupDone: when it passes and neither a page (the
   * page sink counts them: Pages frames go there, not to next()) nor any message after Setup
   * arrived, the channel is aborted (ERR_TIMEOUT, told to the source), which fails whatever step
   * was waiting.
   */
  async #setupWithinDeadline(setup: SetupMsg): Promise<void> {
    await this.#handle(setup);
    const timeoutMs = this.#options.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_MS;
    this.#setupDeadline = setTimeout(() => {
      if (this.#handled > 1 || this.#c.applier.pagesReceived > 0 || this.#built?.multifd?.anyPageReceived) return;
      const error = new MigrationError('ERR_TIMEOUT', `no page within ${timeoutMs} ms of SetupDone (--setup-timeout)`);
      this.#c.logger.warn({ event: 'setup.timeout', err: error }, 'incoming migration made no progress after Setup');
      this.#link.channel.abort(error);
    }, timeoutMs);
  }

  /** Give up (agent shutdown): only before the VM runs here. Returns false once it runs. */
  abort(error: MigrationError): boolean {
    if (!DEST_DISCARDS_ON_FAILURE.includes(this.status)) return false;
    this.#link.channel.abort(error);
    return true;
  }

  /** A second connection joined this migration: the post-copy fault channel. */
  attachFaultChannel(channel: PeerChannel, applier: PageApplier): void {
    this.#requireBuilt(channel)?.paging.joinFaultChannel(channel, applier);
  }

  /** The source reconnected after the link broke during post-copy: answer Missing and carry on over `channel`. */
  resume(channel: PeerChannel, applier: PageApplier): void {
    const paging = this.#requireBuilt(channel)?.paging;
    if (!paging) return;
    if (this.status !== 'postcopy-paused' && this.status !== 'postcopy') {
      channel.abort(new MigrationError('ERR_VM_STATE', `cannot resume: migration is ${this.status}`));
      return;
    }
    paging.answerMissing(channel, applier);
    const disk = this.#built?.sections.disk;
    if (disk?.storage === 'postcopy') channel.send(msg.diskMissing(disk.missingBitmap()));
    this.#link.replace(channel);
  }

  /** Live figures for the destination's query-migrate; its final ones once run() resolved. */
  info(): IncomingInfo {
    const setup = this.#setup;
    const pageSize = setup?.vm.pageSize ?? 0;
    const pages = setup && pageSize ? Math.ceil(setup.vm.memoryBytes / pageSize) : 0;
    const built = this.#built;
    const received = built?.paging.received() ?? { pages: 0, rawPages: 0 };
    const faults = built?.paging.faults();
    return {
      direction: 'incoming',
      migrationId: this.#migrationId,
      vm: setup?.vm.name ?? '',
      mode: setup?.mode ?? 'precopy',
      status: this.status,
      startedAt: performance.timeOrigin + this.#startedAt,
      totalTime: (this.#endedAt ?? performance.now()) - this.#startedAt,
      // With parallel channels, their pages count once their round is in (the barrier).
      pagesReceived: received.pages + this.#multifdTotals().pages,
      bytesReceived: received.rawPages * pageSize + this.#multifdTotals().bytes,
      total: setup?.vm.memoryBytes ?? 0,
      // Post-copy paging started at PostcopyStart; a hybrid that converged never starts it.
      postcopy:
        built && faults
          ? { pages, present: pages - built.vm.missingPages, faults: faults.faults, faultsServed: faults.served }
          : null,
    };
  }

  /** A connection joining this migration (Attach): from the migration's own source, to a VM that exists. */
  #requireBuilt(channel: PeerChannel): Built | undefined {
    const refused = this.#link.refusesJoin(channel, this.#migrationId);
    if (refused) channel.abort(refused);
    else if (this.#built) return this.#built;
    else channel.abort(new MigrationError('ERR_VM_STATE', `migration ${this.#migrationId} has not built its VM yet`));
    return undefined;
  }

  /** One message: the receiver decides, then its action is carried out. */
  async #handle(message: Message): Promise<void> {
    this.#handled++;
    const result = step(this.#state, message);
    if (result instanceof MigrationError) throw result;
    this.#setState(result.state);
    await this.#perform(result.action);
  }

  async #perform(action: Action): Promise<void> {
    const { logger } = this.#c;
    switch (action.kind) {
      case 'build':
        return this.#build(action.setup);
      case 'none':
        return;
      case 'disk-blocks':
        return this.#built!.sections.disk!.apply(action.message);
      case 'fault-open':
        // Started beside the pages (round 0 goes on meanwhile); answered once it listens, or not.
        this.#faultThreadStarting = this.#openFaultOnDemand();
        return;
      case 'disk-prehash':
        this.#built!.sections.disk!.prehash(action.bitmap);
        return;
      case 'disk-written':
        this.#built!.sections.disk!.written(action.blocks);
        return;
      case 'disk-absent':
        this.#built!.sections.disk!.setAbsent(action.bitmap);
        this.#diskAbsentCame = true;
        return;
      case 'ack-round':
        // Every page of the round is in memory (frames are applied in order): say so — once the
        // vCPU is up, so the source, which waits for this ack before it pauses the VM, never
        // pauses it before this side could run it (the worker's start stays out of the downtime).
        // With parallel channels, also once every channel's share of it arrived (the barrier).
        await this.#multifdRound(action.round);
        if (action.round === 0) this.#firstPassAt ??= performance.now();
        await this.#built!.vm.vcpuReady();
        this.#link.channel.send(msg.roundAck(action.round));
        return;
      case 'load':
        this.#built!.sections.load(action.message);
        return;
      case 'verify-precopy': {
        const { sections, vm } = this.#built!;
        await this.#quiesceMultifd();
        await sections.disk?.prepare(); // shared storage: open the image the source just closed
        const digests = sections.verify(action.digests, sections.names);
        this.#exchanged(action.digests, digests);
        this.#dropHostContent(); // every page is here: no reference can come any more
        vm.markAllPresent(); // a hybrid that converged: nothing is absent
        await vm.vcpuReady(); // started in the background at Setup; a vCPU that died fails the migration here
        this.#link.channel.send(msg.ready(digests));
        this.#finalStats = this.#ownFigures();
        logger.info({ event: 'stopcopy.verified', digests }, 'memory, CPU and devices verified; waiting for handoff');
        return;
      }
      case 'start-postcopy': {
        const { sections, paging, vm } = this.#built!;
        await this.#quiesceMultifd();
        await sections.disk?.prepare();
        if (sections.disk?.storage === 'postcopy' && !this.#diskAbsentCame) {
          throw new MigrationError(
            'ERR_UNEXPECTED_MESSAGE',
            'PostcopyStart without DiskAbsent for a disk in post-copy',
          );
        }
        const digests = sections.verify(action.digests, sections.stateNames);
        this.#exchanged(action.digests, digests);
        const absent = Bitmap.fromBytes(action.bitmap, vm.memory.pageCount);
        this.#dropHostContent(); // the VM runs here next: references are refused from now on
        paging.start(absent);
        await vm.vcpuReady();
        this.#link.channel.send(msg.ready(digests));
        logger.info({ event: 'postcopy.ready', absent: absent.count }, 'ready to run with pages absent');
        return;
      }
      case 'resume':
        this.#resumedAt = resumeHere(
          this.#c.host,
          this.#built!,
          this.#link.channel,
          this.#c.logger,
          action.to,
          action.to === 'running' ? this.#finalStats : undefined,
        );
        return;
      case 'source-digests':
        return;
      case 'cancelled':
        return this.#cancelled(action.reason);
      case 'countersign':
        return this.#countersign(action.message);
    }
  }

  /** The host content table is no longer needed: let its memory go (the applier logs what it served). */
  #dropHostContent(): void {
    const { applier, logger } = this.#c;
    const table = applier.hostContent;
    if (table === undefined) return;
    applier.hostContent = undefined;
    logger.info(
      { event: 'dedup.host.done', offered: table.count, tableBytes: table.bytes, references: applier.hostReferences },
      `host content: ${applier.hostReferences} references to ${table.count} contents offered`,
    );
  }

  #exchanged(source: Readonly<Record<string, string>>, dest: Readonly<Record<string, string>>): void {
    Object.assign(this.#digests.source, source);
    Object.assign(this.#digests.dest, dest);
  }

  /**
   * The source ended the migration before Handoff (its Cancel names why): discard the copy here
   * at once, then — `signed-record` negotiated — countersign the source's record of that
   * outcome, which comes next; then fail with the source's reason.
   */
  async #cancelled(reason: string): Promise<never> {
    this.#ended = { by: 'cancel', error: cancelCode(reason) };
    await this.#discard();
    await this.#exchangeRecord();
    throw new MigrationError('ERR_CANCELLED', `source cancelled: ${reason}`);
  }

  async #discard(): Promise<void> {
    this.#built?.sections.disk?.discarding();
    if (this.#built) await this.#c.host.remove(this.#built.name).catch(() => {});
  }

  /**
   * Ended (completed, or cancelled by the source), with `signed-record` negotiated: the source's
   * Record comes next. A record that does not come is only logged: the VM runs on where it runs.
   */
  async #exchangeRecord(): Promise<void> {
    if (!this.#state.recordAllowed) return;
    try {
      await this.#handle(await this.#link.channel.next(AbortSignal.timeout(RECORD_TIMEOUT_MS)));
    } catch (error) {
      this.#c.logger.warn(
        { event: 'record.missing', err: toMigrationError(error) },
        'no migration record came to countersign',
      );
    }
  }

  /** Answer the source's Record: countersign it or refuse, after keeping it (audit log). */
  async #countersign(message: RecordMsg): Promise<void> {
    const answer = await this.#judge(message);
    this.#link.channel.send(msg.countersignature(answer));
    const refused = 'refused' in answer ? answer.refused : undefined;
    this.#c.logger.info(
      { event: 'record.countersigned', refused },
      refused ? `refused to countersign the migration record: ${refused}` : 'countersigned the migration record',
    );
  }

  /** The countersignature of the source's record — kept in the audit log first — or why not. */
  async #judge(message: RecordMsg): Promise<RecordSignature | { refused: string }> {
    const record = parseRecord(message.record);
    if (typeof record === 'string') return { refused: record };
    const signature: RecordSignature = {
      alg: SIGNATURE_ALGORITHM,
      by: record.source?.name ?? '',
      fingerprint: record.source?.fingerprint ?? '',
      value: message.signature,
      certificate: message.certificate,
    };
    const signer = this.#c.signer;
    const refusal = signer
      ? this.#refusal(record, signature, signer)
      : 'this destination has no key to countersign with';
    const countersignature: Countersignature =
      signer && refusal === undefined
        ? { status: 'signed', signature: countersignRecord(record, signature, signer) }
        : { status: 'refused', by: signer?.name ?? '', reason: refusal ?? '' };
    try {
      await this.#c.keepRecord?.({ record, signature, countersignature });
    } catch (error) {
      return {
        refused: `this destination could not keep the record in its audit log: ${toMigrationError(error).message}`,
      };
    }
    return countersignature.status === 'signed' ? countersignature.signature : { refused: countersignature.reason };
  }

  /** Why this side will not countersign `record` as signed by `signature`, or undefined. */
  #refusal(record: MigrationRecord, signature: RecordSignature, signer: Signer): string | undefined {
    const peer = this.#link.channel.peer;
    if (!peer) return 'the source is not authenticated: nobody to hold to the record';
    const source: RecordParty = { name: peer.name, fingerprint: peer.fingerprint };
    const bad = signatureRefusal(signer.trust, signature, source, recordBytes(record), record.times.endedAt);
    if (bad) return `the source's signature: ${bad}`;
    const { vm } = this.#built!;
    const setup = this.#setup!;
    const applier = this.#c.applier;
    const multifd = this.#multifdTotals();
    return observedRefusal(record, {
      migrationId: this.#migrationId,
      vm: { name: setup.vm.name, specHash: vmSpecHash(setup.vm) },
      mode: setup.mode,
      digests: this.#digests,
      pages: {
        total: vm.memory.pageCount,
        received: applier.pagesReceived + multifd.pages,
        payloadBytes: applier.rawPagesReceived * vm.memory.pageSize + multifd.bytes,
        // Pre-copy: every page came on this one connection; post-copy: some on the fault one.
        exact: this.#state.path === 'precopy',
      },
      ticketId: ticketIdOf(setup.ticket),
      source,
      dest: { name: signer.name, fingerprint: signer.fingerprint },
      ended: this.#ended,
    });
  }

  async #build(setup: SetupMsg): Promise<void> {
    const { host, logger, applier } = this.#c;
    const started = performance.now();
    const { admit } = this.#c;
    const { name, vm, prefault, pageHashes } = await buildIncomingVm(setup, {
      host,
      applier,
      logger,
      maxMemoryBytes: this.#options.maxMemoryBytes,
      setupBitmap: this.#link.channel.capabilities.has('setup-bitmap'),
      multifd: this.#link.channel.capabilities.has('multifd'),
      disk: this.#link.channel.capabilities.has('disk'),
      hostContent: negotiatedEncodings(this.#link.channel.capabilities).dedupHost,
      ...(admit ? { admit: () => admit(setup, this.#link.channel.peer) } : {}),
    });
    // Asked for (dedup on, dedup-host negotiated: checked above): what this host's other VMs
    // hold, snapshotted now, so references to it mean what SetupDone says until the end.
    const offered =
      setup.hostContent !== undefined
        ? offerHostContent(host, name, setup.hostContent, vm.memory.pageSize, logger)
        : undefined;
    applier.hostContent = offered;
    const paging = new PostcopyPaging(vm, applier, logger, this.#c.onFaultLatency);
    const virtualDisk = vm.virtualDisk;
    const disk =
      setup.disk && virtualDisk
        ? new DiskLoad(virtualDisk, setup.disk.storage, () => this.#link.channel, logger)
        : undefined;
    this.#built = {
      name,
      vm,
      prefault,
      paging,
      sections: new IncomingSections(vm, applier, disk),
      multifd: undefined,
    };
    // The fault thread and the parallel channels' workers start beside the vCPU worker — the
    // thread not yet for a hybrid with `fault-on-demand`: it starts when the source asks
    // (FaultOpen), so SetupDone does not wait for it (150–300 ms here, measured with
    // `--mode auto`) and a migration that ends as pre-copy never starts it.
    const onDemand = setup.mode === 'hybrid' && this.#state.faultOnDemand;
    const thread = onDemand ? Promise.resolve(undefined) : this.#startFaultThread(setup, vm, paging);
    const multifd = await this.#startMultifd(setup, vm, pageHashes);
    // The vCPU worker starts while pages arrive, and the first RoundAck waits for it; post-copy
    // has no pre-copy round, so it waits here, before the source may pause the VM.
    const ready = setup.mode === 'postcopy' ? vm.vcpuReady() : Promise.resolve();
    ready.catch(() => {}); // awaited below, once the thread is known (and so stopped on failure)
    const faultThread = await thread;
    await ready;
    this.#link.channel.send(
      msg.setupDone(
        performance.now() - started,
        offered ? { hashes: offered.hashes, ms: offered.figures.ms } : undefined,
        faultThread ? { port: faultThread.port, token: faultThread.token } : undefined,
        multifd ? { ports: multifd.ports, token: multifd.token } : undefined,
      ),
    );
    this.#event('built');
    logger.info({ event: 'setup.done', migrationId: this.#migrationId, vm: name, mode: setup.mode }, 'receiving VM');
  }

  /**
   * Parallel bulk channels, when Setup asked for them: N channel workers listening where the
   * fault thread would (this agent's data host, its TLS identity; only the migration's own source,
   * of role agent, with the token SetupDone carries). None — the source then sends every page on
   * the main connection — if they cannot start. A channel failing before the last round is in
   * fails the migration (the VM is discarded here and runs on at the source).
   */
  async #startMultifd(
    setup: SetupMsg,
    vm: ToyVm,
    pageHashes: SharedPageHashes | undefined,
  ): Promise<MultifdReceiver | undefined> {
    const config = this.#c.faultThread;
    const { logger } = this.#c;
    const channels = setup.channels;
    if (channels === undefined || pageHashes === undefined) return undefined;
    if (!config) {
      logger.warn({ event: 'multifd.unavailable', channels }, 'no data address for parallel channels: one channel');
      return undefined;
    }
    try {
      const receiver = await MultifdReceiver.listen({
        memory: vm.memory,
        hashes: pageHashes,
        host: config.host,
        channels,
        migrationId: setup.migrationId,
        ...(config.tls ? { tls: config.tls } : {}),
        ...(this.#link.channel.peer ? { sourceName: this.#link.channel.peer.name } : {}),
        ...(config.handshakeTimeoutMs === undefined ? {} : { attachTimeoutMs: config.handshakeTimeoutMs }),
      });
      receiver.onFailure = (error) => {
        if (this.#multifdQuiet) return;
        // None attached: the source could not reach the channels' ports and went on with one
        // connection (multifd.ts) — it attaches every channel before any page, or none.
        if (receiver.attachedCount === 0) return this.#abandonMultifd(error.message);
        logger.warn({ event: 'multifd.failed', err: error, refusals: receiver.refusals }, 'a parallel channel failed');
        this.#link.channel.abort(error);
      };
      receiver.onRefused = (refusal) =>
        logger.warn({ event: 'multifd.refused', err: refusal }, 'a parallel channel port refused a connection');
      this.#c.applier.receivedElsewhere = (page) => receiver.hasReceived(page);
      this.#built!.multifd = receiver;
      logger.info({ event: 'multifd.listening', channels, ports: receiver.ports }, 'parallel channels listen');
      return receiver;
    } catch (error) {
      logger.warn({ event: 'multifd.unavailable', err: error }, 'parallel channels could not start: one channel');
      return undefined;
    }
  }

  /** Pages and payload bytes the parallel channels delivered in their completed rounds (none without them). */
  #multifdTotals(): { pages: number; bytes: number } {
    return (this.#built?.multifd?.totals ?? []).reduce(
      (sum, t) => ({ pages: sum.pages + t.pages, bytes: sum.bytes + t.bytes }),
      { pages: 0, bytes: 0 },
    );
  }

  /** RoundEnd `round`: with parallel channels, wait until every channel's share of it arrived (the barrier). */
  async #multifdRound(round: number): Promise<void> {
    const multifd = this.#built?.multifd;
    if (!multifd || this.#multifdQuiet) return;
    // A round ended and no channel ever attached: the source sends every page on the main connection.
    if (multifd.attachedCount === 0) return this.#abandonMultifd(`round ${round} ended with no channel attached`);
    const verdict = await multifd.roundComplete(round, MULTIFD_ROUND_TIMEOUT_MS);
    this.#c.logger.debug({ event: 'multifd.round', ...verdict }, `round ${round} arrived on every parallel channel`);
  }

  /** The source went on without the parallel channels: stop waiting for them. */
  #abandonMultifd(why: string): void {
    const multifd = this.#built?.multifd;
    if (!multifd || this.#multifdQuiet) return;
    this.#multifdQuiet = true;
    this.#c.logger.warn(
      { event: 'multifd.abandoned', why },
      'the source did not attach the parallel channels: one channel',
    );
    void multifd.stop();
  }

  /**
   * The last pre-copy round is in (StopCopyEnd, PostcopyStart): close the parallel channels and wait
   * until no worker writes into guest memory any more — before the digest is checked and the VM runs.
   */
  async #quiesceMultifd(): Promise<void> {
    const multifd = this.#built?.multifd;
    if (!multifd || this.#multifdQuiet) return;
    this.#multifdQuiet = true;
    if (multifd.error) throw multifd.error;
    await multifd.quiesce();
  }

  /**
   * FaultOpen: start the fault thread and say where it listens (FaultListening; nothing: attach at
   * the main port). Never rejects: nobody awaits it until run() ends, and a hybrid that converges
   * may end — its channel closed — before the thread listens (a 16 MiB one takes ~300 ms, a thread
   * as long to start on a loaded machine): then there is nobody to tell, and the thread stops
   * with the rest.
   */
  async #openFaultOnDemand(): Promise<void> {
    const { vm, paging } = this.#built!;
    const thread = await this.#startFaultThread(this.#setup!, vm, paging);
    if (this.#state.status !== 'receiving' && this.#state.status !== 'ready') return;
    try {
      this.#link.channel.send(msg.faultListening(thread ? { port: thread.port, token: thread.token } : undefined));
    } catch (error) {
      this.#c.logger.debug(
        { event: 'fault-thread.unannounced', err: error },
        'the migration ended before the fault thread listened',
      );
    }
  }

  /**
   * A fault thread for a VM that may run with pages absent, when the source can use one and this
   * agent has a data address for it; none (faults on this thread) if it cannot start.
   */
  async #startFaultThread(setup: SetupMsg, vm: ToyVm, paging: PostcopyPaging): Promise<FaultThread | undefined> {
    const config = this.#c.faultThread;
    const channel = this.#link.channel;
    if (!config || setup.mode === 'precopy' || !channel.capabilities.has('fault-thread')) return undefined;
    try {
      const thread = await FaultThread.start({
        config,
        vm,
        claims: paging.claims,
        migrationId: setup.migrationId,
        sourceName: channel.peer?.name,
        capabilities: [...channel.capabilities],
        logger: this.#c.logger,
      });
      paging.useFaultThread(thread);
      this.#c.logger.info({ event: 'fault-thread.listening', port: thread.port }, 'the fault thread listens');
      return thread;
    } catch (error) {
      this.#c.logger.warn({ event: 'fault-thread.failed', err: error }, 'no fault thread: faults are served here');
      return undefined;
    }
  }

  /**
   * Post-copy until every page is present and the source's digest (StopCopyEnd, after its push)
   * matches what arrived. A broken link parks the migration in postcopy-paused until resume().
   */
  async #postcopy(): Promise<void> {
    const { vm, sections, paging } = this.#built!;
    const disk = sections.disk;
    paging.onAllPresent = () => this.#link.wake();
    if (disk) disk.onAllPresent = () => this.#link.wake();
    while (this.#state.sourceDigests === undefined || vm.missingPages > 0 || (disk?.missing ?? 0) > 0) {
      try {
        const message = await this.#link.nextOrWake();
        if (message) await this.#handle(message);
      } catch (error) {
        if (this.#link.channel.failure === undefined) throw error;
        await this.#pauseUntilResumed(toMigrationError(error));
      }
    }
    await paging.flush(); // the fault thread's last pages in the ledger
    vm.markAllPresent();
    disk?.finish();
    // The VM already runs here: a mismatch has nothing to roll back to, and the error says so.
    const digests = sections.verify(this.#state.sourceDigests, sections.postcopyNames);
    this.#exchanged(this.#state.sourceDigests, digests);
    const { stats, noticeDelayMs } = paging.completeStats(this.#resumedAt);
    this.#firstPassAt ??= performance.now();
    this.#link.channel.send(msg.complete({ ...stats, ...this.#ownFigures() }, digests));
    this.#event('all-present');
    this.#c.logger.info(
      { event: 'postcopy.complete', ...stats, faultNoticeDelayMs: noticeDelayMs },
      'every page is here; migration complete',
    );
  }

  /**
   * What only this side measured over its part, for the source's report: its threads' CPU time
   * since Setup (report/threads.ts) and how the pre-fault went.
   */
  #ownFigures(): Record<string, unknown> {
    const threads = threadsBetween(this.#threadsAtStart, processThreads.snapshot());
    const prefault = this.#built?.prefault;
    if (!prefault) return { threads };
    return {
      threads,
      prefault: prefaultReport({
        pages: prefault.pages,
        touched: prefault.touched,
        setupAt: this.#startedAt,
        startedAt: prefault.startedAt,
        doneAt: prefault.doneAt,
        firstPassAt: this.#firstPassAt,
      }),
    };
  }

  async #pauseUntilResumed(error: MigrationError): Promise<void> {
    const { paging, vm, name } = this.#built!;
    this.#event('link-lost');
    paging.detachFaultChannel();
    this.#c.logger.warn(
      { event: 'postcopy.paused', err: error, missing: vm.missingPages },
      'link lost during post-copy: the VM runs here but blocks on absent pages until the source reconnects',
    );
    this.#c.host.setState(name, 'running');
    await this.#link.awaitReplacement();
    this.#event('relinked');
    this.#c.logger.info({ event: 'postcopy.resumed' }, 'source reconnected; post-copy continues');
  }

  #event(event: InternalEvent): void {
    const next = advance(this.#state, event);
    if (next instanceof MigrationError) throw next;
    this.#setState(next);
  }

  #setState(next: ReceiverState): void {
    const from = this.#state.status;
    this.#state = next;
    if (from === next.status) return;
    this.#c.logger.info(
      { event: 'status.change', from, to: next.status },
      `incoming migration ${from} → ${next.status}`,
    );
    this.#c.emit('MIGRATION', { migrationId: this.#migrationId, status: next.status, vm: this.#built?.name ?? '' });
  }

  async #fail(error: MigrationError): Promise<void> {
    const { logger } = this.#c;
    const discard = DEST_DISCARDS_ON_FAILURE.includes(this.status) || this.#state.cancelled;
    this.#link.channel.abort(error);
    if (discard) await this.#discard();
    logger.warn(
      { event: 'migration.failed', err: error, status: this.status },
      discard ? 'incoming migration failed; the half-built VM was discarded' : 'incoming migration failed',
    );
    const next = advance(this.#state, 'failed');
    if (!(next instanceof MigrationError)) this.#setState(next);
  }
}
