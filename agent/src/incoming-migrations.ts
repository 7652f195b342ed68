/**
 * The migrations an agent accepts on its data port: one IncomingMigration (@livemig/agent-dest)
 * per connection that starts with Setup; a connection that starts with Attach joins the one it
 * names (the post-copy fault channel, or a reconnect after a broken link); one that starts with
 * Query asks whether a VM runs here (vm-query.ts: answered to the source it arrived from). An
 * incoming migration is kept only while it runs: the VM it built then belongs to the host alone,
 * so it can run here and later leave again like any other.
 *
 * Limits (admission.ts): the first message must arrive within the connection's handshake
 * deadline (a peer that finished the handshake and then only sends heartbeats is closed at it);
 * at most `maxIncoming` migrations run at once — one more is refused at Setup with
 * ERR_TOO_MANY_INCOMING before anything else is looked at (its ticket stays unspent), and the
 * guest-memory budget is VmHost's (ERR_NO_MEMORY).
 *
 * Shutdown: migrations that have not handed over yet are aborted — the source still owns those
 * VMs and resumes them; the ones past handover run to their end.
 */
import type { Logger } from 'pino';
import { DEFAULT_MAX_INCOMING, MigrationError, refuseOverLimit, toMigrationError } from '@livemig/shared';
import { IncomingMigration, type IncomingComponents, type IncomingOptions } from '@livemig/agent-dest';
import { messageName, MsgType, type AcceptedPeer } from '@livemig/shared/channel';
import type { IncomingInfo } from '@livemig/shared/control';
import type { VmHost } from '@livemig/shared/host';
import type { AttachChannel, SetupMsg } from '@livemig/shared/protocol';
import type { TicketStore } from '@livemig/shared/security';
import { answerQuery, Arrivals } from './vm-query.ts';

export interface IncomingMigrationsComponents {
  host: VmHost;
  logger: Logger;
  emit: IncomingComponents['emit'];
  /** Secure agents: every incoming migration must present a ticket of this store. @default none: no tickets */
  tickets?: TicketStore;
  /** Countersign the sources' migration records with this key (IncomingComponents.signer). */
  signer?: IncomingComponents['signer'];
  /** Keep each record countersigned or refused (the audit log) before answering. */
  keepRecord?: IncomingComponents['keepRecord'];
  /** Hears each post-copy fault's latency (IncomingComponents.onFaultLatency: the metrics). */
  onFaultLatency?: IncomingComponents['onFaultLatency'];
  /** Where post-copy fault threads listen (IncomingComponents.faultThread). @default none */
  faultThread?: IncomingComponents['faultThread'];
  /** Told how each incoming migration ended, with the mode its Setup asked for (the metrics). */
  onEnded?: (ended: { mode: SetupMsg['mode']; outcome: NonNullable<IncomingMigration['outcome']> }) => void;
}

export interface IncomingMigrationsOptions {
  /** Largest VM accepted. @default 16 GiB */
  maxMemoryBytes?: number;
  /** Incoming migrations at once (Setup to end). @default 4 */
  maxIncoming?: number;
  /** From SetupDone to the first page; heartbeats do not extend it. @default 10000 */
  setupTimeoutMs?: number;
}

export class IncomingMigrations {
  readonly #c: IncomingMigrationsComponents;
  readonly #options: IncomingOptions;
  readonly #maxIncoming: number;
  /** The migrations in progress, by id, with the name of the VM each is building. */
  readonly #migrations = new Map<string, { migration: IncomingMigration; vm: string }>();
  readonly #running = new Set<Promise<void>>();
  /** Where each VM came from, kept past its migration: who may ask whether it runs here (vm-query.ts). */
  readonly #arrivals: Arrivals;
  /** The final figures of the migration that ended last (query-migrate), nothing of its VM. */
  #lastEnded: IncomingInfo | undefined;

  constructor(components: IncomingMigrationsComponents, options: IncomingMigrationsOptions = {}) {
    this.#c = components;
    this.#arrivals = new Arrivals(components.host);
    this.#options = {
      maxMemoryBytes: options.maxMemoryBytes ?? 16 * 2 ** 30,
      ...(options.setupTimeoutMs === undefined ? {} : { setupTimeoutMs: options.setupTimeoutMs }),
    };
    this.#maxIncoming = options.maxIncoming ?? DEFAULT_MAX_INCOMING;
  }

  /** Incoming migrations in progress (Setup to end). */
  get inProgress(): number {
    return this.#migrations.size;
  }

  /**
   * A peer finished the handshake. Its first message says what it is: Setup starts a migration;
   * Attach joins one in progress. It must come before the handshake deadline.
   */
  accept(peer: AcceptedPeer): void {
    const logger = this.#c.logger.child({ role: 'dest', peer: peer.remoteAgentId });
    peer.channel
      .next(peer.deadline)
      .then((first) => {
        if (first.type === MsgType.Setup) return this.#start(peer, first, logger);
        if (first.type === MsgType.Attach) return this.#attach(peer, first.migrationId, first.channel);
        if (first.type === MsgType.Query) {
          return answerQuery(peer, first, { host: this.#c.host, arrivals: this.#arrivals, logger });
        }
        throw new MigrationError(
          'ERR_UNEXPECTED_MESSAGE',
          `a connection must start with Setup, Attach or Query, not ${messageName(first.type)}`,
        );
      })
      .catch((error: unknown) => {
        const failure = toMigrationError(error, 'ERR_CONNECTION');
        logger.warn({ err: failure }, 'dropped a connection');
        peer.channel.abort(failure);
      });
  }

  /**
   * query-migrate here: the incoming migration with this id (in progress, or the one that ended
   * last), else undefined; without an id the newest in progress, else the one that ended last.
   */
  info(migrationId?: string): IncomingInfo | undefined {
    if (migrationId !== undefined) {
      const running = this.#migrations.get(migrationId)?.migration.info();
      return running ?? (this.#lastEnded?.migrationId === migrationId ? this.#lastEnded : undefined);
    }
    const newest = [...this.#migrations.values()].pop();
    return newest?.migration.info() ?? this.#lastEnded;
  }

  /**
   * Why `vm` is still arriving here — post-copy, with pages still on the source — or undefined
   * when it is not (then it may leave again).
   */
  stillArriving(vm: string): string | undefined {
    for (const { migration, vm: name } of this.#migrations.values()) {
      if (name === vm && (migration.status === 'postcopy' || migration.status === 'postcopy-paused')) {
        return `its incoming migration ${migration.migrationId} is ${migration.status} (pages are still on the source)`;
      }
    }
    return undefined;
  }

  #start(peer: AcceptedPeer, setup: SetupMsg, logger: Logger): void {
    const busy = refuseOverLimit(
      this.#migrations.size,
      this.#maxIncoming,
      'ERR_TOO_MANY_INCOMING',
      'incoming migrations',
      '--max-incoming',
    );
    if (busy) throw busy;
    this.#arrivals.record(setup.vm.name, { migrationId: setup.migrationId, source: peer.channel.peer?.name ?? null });
    const migration = new IncomingMigration(
      {
        host: this.#c.host,
        channel: peer.channel,
        applier: peer.applier,
        logger: logger.child({ migrationId: setup.migrationId }),
        emit: this.#c.emit,
        ...(this.#c.tickets ? { admit: admitWith(this.#c.tickets) } : {}),
        ...(this.#c.signer ? { signer: this.#c.signer } : {}),
        ...(this.#c.keepRecord ? { keepRecord: this.#c.keepRecord } : {}),
        ...(this.#c.onFaultLatency ? { onFaultLatency: this.#c.onFaultLatency } : {}),
        ...(this.#c.faultThread ? { faultThread: this.#c.faultThread } : {}),
      },
      this.#options,
    );
    this.#migrations.set(setup.migrationId, { migration, vm: setup.vm.name });
    const done = migration
      .run(setup)
      .then(() => this.#c.onEnded?.({ mode: setup.mode, outcome: migration.outcome ?? 'failed' }))
      .finally(() => {
        this.#migrations.delete(setup.migrationId);
        this.#running.delete(done);
      });
    this.#running.add(done);
    // Its final figures, taken once it is over and gone from #migrations.
    const keepFigures = (): void => {
      this.#lastEnded = migration.info();
    };
    void done.then(keepFigures, keepFigures);
  }

  #attach(peer: AcceptedPeer, migrationId: string, channel: AttachChannel): void {
    const migration = this.#migrations.get(migrationId)?.migration;
    if (!migration) throw new MigrationError('ERR_NOT_FOUND', `no migration ${migrationId} in progress here`);
    if (channel === 'fault') migration.attachFaultChannel(peer.channel, peer.applier);
    else migration.resume(peer.channel, peer.applier);
  }

  /** Shutdown: abort every migration not yet handed over, then wait for all to end. */
  async abortAll(reason: string): Promise<void> {
    const error = new MigrationError('ERR_PEER_ABORTED', `agent shutting down (${reason})`);
    for (const { migration } of this.#migrations.values()) migration.abort(error);
    await Promise.allSettled([...this.#running]);
  }
}

/**
 * A secure destination takes a VM only with the ticket its operator issued for that VM and that
 * source certificate (spent at first presentation, whatever the outcome).
 */
function admitWith(tickets: TicketStore): NonNullable<IncomingComponents['admit']> {
  return (setup, peer) => {
    if (!peer) throw new MigrationError('ERR_UNAUTHENTICATED', 'an incoming migration needs an authenticated source');
    const check = tickets.consume(setup.ticket, { vm: setup.vm.name, from: peer.name });
    if (!check.ok) throw new MigrationError(check.code, check.reason);
  };
}
