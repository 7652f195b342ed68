/**
 * The livemig agent: one daemon per host, both ends of every migration, as libvirtd or a
 * KubeVirt handler is. Components:
 *
 *   VmHost              the VMs hosted here, by name (booted here, or arrived by migration)
 *   ControlServer       QMP-like commands and events: the host commands (query-vms, stop, cont,
 *                       digest, destroy-vm), create-vm, and the migration commands
 *   OutgoingMigrations  one OutgoingMigration per `migrate` (outgoing-migrations.ts)
 *   IncomingMigrations  with a data port (`listen`): one IncomingMigration per Setup, Attach
 *                       routed to its migration, Query answered (incoming-migrations.ts,
 *                       vm-query.ts)
 *   cont --force        after an unconfirmed handoff, asks the destination first (forced-cont.ts)
 *   DirtyRateQueries    query-dirty-rate: a VM's dirty rate by page sampling, reading memory only
 *                       (query-dirty-rate.ts)
 *   AuditLog            with `auditLog`: every state-changing command (audited-commands.ts) and
 *                       every migration record, hash-chained, signed with the agent's key when
 *                       it has one, fsynced before the reply (audit-log.ts)
 *   AgentMetrics        with `metrics`: Prometheus figures fed by the parts above (metrics.ts),
 *   MetricsServer       served on GET /metrics (metrics-server.ts)
 *
 * So a VM that arrived here can leave again — onward, or back to where it came from — and a VM
 * that left keeps only its record (`migrated` in query-vms), its memory freed.
 *
 * Shutdown (SIGTERM): stop accepting; abort incoming migrations not yet handed over (their
 * sources keep those VMs); tell outgoing migrations still iterating to switch over now and give
 * them a grace period (the VM dies with this process; finishing leaves it running on the
 * destination), then cancel what is still short of its point of no return; then free the VMs.
 */
import { randomUUID } from 'node:crypto';
import { totalmem } from 'node:os';
import type { Logger } from 'pino';
import {
  formatHostPort,
  isLoopback,
  MigrationError,
  resolveAvailabilityLimits,
  type AvailabilityLimits,
  type GuestMemoryLedger,
  type HostPort,
} from '@livemig/shared';
import {
  listenForPeers,
  OFFERED_CAPABILITIES,
  type DestTls,
  type PeerChannel,
  type PeerListener,
} from '@livemig/shared/channel';
import {
  createSigner,
  TicketStore,
  type LoadedPki,
  type RecordOperator,
  type SignedRecord,
  type Signer,
} from '@livemig/shared/security';
import { AuditLog } from './audit-log.ts';
import { auditedHandlers, refusalRecorder } from './audited-commands.ts';
import { contHandler } from './forced-cont.ts';
import { allowSourceMatcher } from './allow-source.ts';
import { checkPlaintext } from './plaintext-policy.ts';
import { DirtyRateQueries } from './query-dirty-rate.ts';
import { queryMigrate } from './query-migrate.ts';
import type { Capability } from '@livemig/shared/protocol';
import {
  ControlServer,
  type CommandHandlers,
  type MigrateParams,
  type MigrationInfo,
  type RateLimit,
} from '@livemig/shared/control';
import { VmDigests, VmHost, hostCommandHandlers, type VmHostOptions } from '@livemig/shared/host';
import type { MigrationReport } from '@livemig/shared/report';
import { parseVmSpec, type VmSpec } from '@livemig/shared/vm';
import { IncomingMigrations } from './incoming-migrations.ts';
import { AgentMetrics } from './metrics.ts';
import { MetricsServer } from './metrics-server.ts';
import { OutgoingMigrations } from './outgoing-migrations.ts';

/** Mutual TLS for this agent's data connections (the control plane follows). */
export interface AgentSecurity {
  /** This agent's credentials from the fleet PKI (`loadPki(dir, name)`). */
  pki: LoadedPki;
  /** Source certificate names allowed to migrate VMs here (globs). @default none: nobody */
  allowSource?: readonly string[];
  /** How long a `prepare-incoming` ticket stays valid. @default 60000 */
  ticketTtlMs?: number;
}

export interface AgentDaemonOptions {
  /** The control API's address (ws). */
  control: HostPort;
  /** The data port migrations arrive on. @default none: this agent can migrate VMs out but accepts none */
  listen?: HostPort;
  logger: Logger;
  /** This agent's name in handshakes. @default `${idPrefix}-` and 8 random hex digits */
  agentId?: string;
  /** Start of the generated agentId (e.g. the command that started it). @default 'agent' */
  idPrefix?: string;
  /** How VMs with a NIC get their address here. @default loopback (bind the VM's ip:port on this host) */
  addressMover?: VmHostOptions['addressMover'];
  /** Largest VM accepted by migration. @default 16 GiB */
  maxMemoryBytes?: number;
  /**
   * Guest memory this agent may hold — hosted VMs plus reservations for incoming ones; a Setup or
   * create-vm past it is refused with ERR_NO_MEMORY before anything is allocated. @default half of physical memory
   */
  maxGuestMemoryBytes?: number;
  /** Incoming migrations at once; one more is refused at Setup with ERR_TOO_MANY_INCOMING. @default 4 */
  maxIncoming?: number;
  /** Data connections in their handshake at once; one more is refused with ERR_TOO_MANY_CONNECTIONS. @default 64 */
  maxUnauthenticated?: number;
  /** From a data connection's accept to its handshake and first message (not extended by heartbeats). @default 5000 */
  handshakeTimeoutMs?: number;
  /** From an incoming migration's SetupDone to its first page (not extended by heartbeats). @default 10000 */
  setupTimeoutMs?: number;
  /** How long shutdown waits for outgoing migrations in flight. @default 30000 */
  shutdownGraceMs?: number;
  /**
   * Mutual TLS on every data connection, and tickets: an incoming migration needs one from
   * `prepare-incoming`. @default none: plaintext, no tickets (loopback only — the CLI enforces it)
   */
  security?: AgentSecurity;
  /**
   * The migration capabilities this agent offers, both ends (QEMU's migrate-set-capabilities):
   * a feature either side leaves out is not used. @default OFFERED_CAPABILITIES (all)
   */
  capabilities?: readonly Capability[];
  /** Browser origins allowed on the control API (ControlServer's allowOrigins). @default none */
  allowOrigins?: readonly string[];
  /** Most control clients connected at once; more are refused with HTTP 503 (ControlServer's maxClients). @default 64 */
  maxControlClients?: number;
  /** Requests per control client: burst, then rate (ControlServer's rateLimit). @default 50/s, burst 100 */
  controlRateLimit?: RateLimit;
  /**
   * Without `security`: bind plaintext ports beyond loopback anyway (warned about at start and on
   * every connection). @default false: start() refuses with ERR_INSECURE
   */
  insecure?: boolean;
  /**
   * The audit log file: every state-changing command and every migration record, hash-chained,
   * each entry signed with this agent's key when it has `security`, fsynced before the reply.
   * @default none: nothing is logged
   */
  auditLog?: string;
  /**
   * Where the disk images of VMs booted here go (NAME.img each, removed with the VM); the CLI
   * makes it the agent's state directory. @default a temporary directory per VM
   */
  diskDir?: string;
  /** A VM to boot once the ports listen (`livemig agent --vm`); if it cannot boot, start() fails. @default none */
  vm?: { name: string; spec: VmSpec };
  /**
   * Serve Prometheus metrics on GET /metrics here: plaintext HTTP on loopback; beyond it HTTPS with
   * client certificates when the agent has `security`, else refused like any plaintext port
   * (ERR_INSECURE unless `insecure`). @default none: no metrics port
   */
  metrics?: HostPort;
}

/** What peers cost an agent now, against its limits (AgentDaemon.availability()). */
export interface AvailabilityStatus {
  limits: Readonly<AvailabilityLimits>;
  guestMemory: GuestMemoryLedger;
  /** Incoming migrations in progress. */
  incoming: number;
  /** Data connections in their handshake. */
  inHandshake: number;
}

export class AgentDaemon {
  readonly agentId: string;
  readonly #limits: Readonly<AvailabilityLimits>;
  readonly host: VmHost;
  readonly #graceMs: number;
  readonly #outgoing: OutgoingMigrations;
  readonly #incoming: IncomingMigrations;
  /** `digest` requests: hashed in a worker thread, one per VM at a time. */
  readonly #digests = new VmDigests();
  /** `query-dirty-rate` requests: one measurement per VM at a time. */
  readonly #dirtyRates: DirtyRateQueries;
  #control: ControlServer | undefined;
  #listener: PeerListener | undefined;
  readonly #metrics: AgentMetrics | undefined;
  #metricsServer: MetricsServer | undefined;

  private constructor(options: AgentDaemonOptions) {
    this.agentId = options.agentId ?? `${options.idPrefix ?? 'agent'}-${randomUUID().slice(0, 8)}`;
    this.#graceMs = options.shutdownGraceMs ?? 30_000;
    this.#limits = resolveAvailabilityLimits(options, totalmem());
    this.host = new VmHost({
      onState: (name, state) => this.#control?.emit('VM_STATE', { name, state }),
      logger: options.logger,
      addressMover: options.addressMover,
      maxGuestMemoryBytes: this.#limits.maxGuestMemoryBytes,
      ...(options.diskDir === undefined ? {} : { diskDir: options.diskDir }),
    });
    // Events go to whoever is connected to the control API at the time.
    const emit: ControlServer['emit'] = (event, data) => this.#control?.emit(event, data);
    const metrics = options.metrics
      ? new AgentMetrics({
          host: this.host,
          outgoingInFlight: () => this.#outgoing.inFlight(),
          stillArriving: (vm) => this.#incoming.stillArriving(vm),
        })
      : undefined;
    this.#metrics = metrics;
    this.#security = options.security;
    this.#tickets = options.security ? new TicketStore() : undefined;
    this.#signer = options.security ? createSigner(options.security.pki) : undefined;
    // Records are exchanged only by agents that can sign them.
    this.#capabilities = (options.capabilities ?? OFFERED_CAPABILITIES).filter(
      (c) => c !== 'signed-record' || this.#signer !== undefined,
    );
    this.#incoming = new IncomingMigrations(
      {
        host: this.host,
        logger: options.logger,
        emit,
        ...(this.#tickets ? { tickets: this.#tickets } : {}),
        ...(this.#signer ? { signer: this.#signer } : {}),
        keepRecord: (record) => this.#keepRecord('dest', record),
        // Post-copy fault threads listen on the data port's host, with the same TLS identity.
        ...(options.listen
          ? {
              faultThread: {
                host: options.listen.host,
                agentId: this.agentId,
                tls: options.security ? credentials(options.security.pki) : undefined,
              },
            }
          : {}),
        ...(metrics
          ? {
              onFaultLatency: (ms: number) => metrics.faultLatency(ms),
              onEnded: (ended: Parameters<AgentMetrics['incomingEnded']>[0]) => metrics.incomingEnded(ended),
            }
          : {}),
      },
      {
        maxMemoryBytes: options.maxMemoryBytes,
        maxIncoming: this.#limits.maxIncoming,
        setupTimeoutMs: this.#limits.setupTimeoutMs,
      },
    );
    this.#outgoing = new OutgoingMigrations({
      host: this.host,
      agentId: this.agentId,
      logger: options.logger,
      emit,
      capabilities: this.#capabilities,
      stillArriving: (vm) => this.#incoming.stillArriving(vm),
      ...(options.security ? { pki: options.security.pki } : {}),
      ...(this.#signer ? { signer: this.#signer } : {}),
      keepRecord: (record) => this.#keepRecord('source', record),
      ...(metrics
        ? {
            onChannel: (channel: PeerChannel) => metrics.trackChannel(channel, 'outgoing'),
            onReport: (report: MigrationReport) => metrics.outgoingEnded(report),
          }
        : {}),
    });
    this.#dirtyRates = new DirtyRateQueries({
      host: this.host,
      stillArriving: (vm) => this.#incoming.stillArriving(vm),
    });
    // A forced cont after an unconfirmed handoff asks the destination first (forced-cont.ts).
    this.#cont = contHandler({
      host: this.host,
      handedTo: (vm) => this.#outgoing.handedTo(vm),
      logger: options.logger,
    });
  }

  readonly #cont: NonNullable<CommandHandlers['cont']>;

  readonly #security: AgentSecurity | undefined;
  readonly #tickets: TicketStore | undefined;
  readonly #signer: Signer | undefined;
  readonly #capabilities: readonly Capability[];
  #audit: AuditLog | undefined;

  /** Keep a migration record in the audit log (fsynced); without a log, nowhere. */
  async #keepRecord(role: 'source' | 'dest', record: SignedRecord): Promise<void> {
    await this.#audit?.append({ kind: 'record', role, record });
  }

  /**
   * Open the audit log (with `auditLog`), bind the control API and the data port (with `listen`),
   * boot `vm`; resolves once all of them are up. A step that fails undoes those before it (ports
   * closed, log closed and unlocked, VM freed) and start() rejects with its error: no half-started
   * agent that a supervisor would take for a running one.
   */
  static async start(options: AgentDaemonOptions): Promise<AgentDaemon> {
    const { logger } = options;
    // Before anything opens: plaintext beyond loopback only on purpose.
    const plaintext = options.security
      ? undefined
      : checkPlaintext(
          { control: options.control, listen: options.listen, metrics: options.metrics },
          options.insecure === true,
        );
    const exposed = plaintext !== undefined && plaintext.exposed.length > 0;
    const warnConnection = exposed
      ? (remote: string, port: string): void =>
          logger.warn({ remote, port }, 'INSECURE: plaintext connection, unauthenticated and unencrypted (--insecure)')
      : undefined;
    const daemon = new AgentDaemon(options);
    try {
      await daemon.#open(options, warnConnection);
    } catch (error) {
      await daemon.stop('start failed').catch((undo: unknown) => {
        logger.error({ err: undo }, 'could not undo a failed start');
      });
      throw error;
    }
    logger.info(
      {
        control: daemon.controlUrl,
        listen: daemon.dataAddress,
        metrics: daemon.metricsUrl,
        agentId: daemon.agentId,
        auditLog: daemon.#audit?.file,
      },
      'agent listening',
    );
    if (exposed) {
      logger.warn(
        { exposed: plaintext.exposed },
        'INSECURE: plaintext beyond loopback (--insecure): anyone who reaches these ports can drive this agent and read or plant VM memory',
      );
    } else if (plaintext) {
      logger.info('plaintext on loopback only: no authentication, no encryption (give --pki for mutual TLS)');
    }
    return daemon;
  }

  /** start()'s steps, in order; each leaves what it opened in a field for stop() to close. */
  async #open(options: AgentDaemonOptions, warnConnection?: (remote: string, port: string) => void): Promise<void> {
    // What a killed predecessor left half-migrated in the disk directory goes before anything arrives.
    await this.host.sweepHalfMigratedDisks();
    if (options.auditLog) {
      this.#audit = await AuditLog.open({
        file: options.auditLog,
        agent: this.#signer?.name ?? this.agentId,
        ...(this.#signer ? { signer: this.#signer } : {}),
      });
    }
    this.#control = await ControlServer.start(
      {
        host: options.control.host,
        port: options.control.port,
        logger: options.logger,
        ...(options.allowOrigins ? { allowOrigins: options.allowOrigins } : {}),
        ...(options.maxControlClients === undefined ? {} : { maxClients: options.maxControlClients }),
        ...(options.controlRateLimit ? { rateLimit: options.controlRateLimit } : {}),
        ...(warnConnection ? { onConnection: (remote: string) => warnConnection(remote, 'control') } : {}),
        ...(this.#audit ? { onRefused: refusalRecorder(this.#audit) } : {}),
        // Secure agents: wss with client certificates, every command checked against the caller's role.
        ...(options.security ? { tls: credentials(options.security.pki) } : {}),
      },
      this.#audit ? auditedHandlers(this.#handlers(), this.#audit) : this.#handlers(),
    );
    if (options.listen) {
      this.#listener = await listenForPeers({
        ...options.listen,
        agentId: this.agentId,
        logger: options.logger,
        capabilities: this.#capabilities,
        ...(options.security ? { tls: destTls(options.security) } : {}),
        maxUnauthenticated: this.#limits.maxUnauthenticated,
        handshakeTimeoutMs: this.#limits.handshakeTimeoutMs,
        onPeer: (peer) => {
          warnConnection?.(peer.remote, 'data');
          this.#metrics?.trackChannel(peer.channel, 'incoming');
          this.#incoming.accept(peer);
        },
      });
    }
    if (options.metrics && this.#metrics) {
      const metrics = this.#metrics;
      // Beyond loopback a secure agent serves them only over mutual TLS (plaintext ones were checked above).
      const tls = options.security && !isLoopback(options.metrics.host) ? credentials(options.security.pki) : undefined;
      this.#metricsServer = await MetricsServer.start(
        {
          ...options.metrics,
          logger: options.logger,
          ...(tls ? { tls } : {}),
          ...(warnConnection ? { onConnection: (remote: string) => warnConnection(remote, 'metrics') } : {}),
        },
        () => metrics.exposition(),
      );
      metrics.start();
    }
    if (options.vm) await this.host.create(options.vm.name, options.vm.spec);
  }

  get controlUrl(): string {
    if (!this.#control) throw new MigrationError('ERR_INTERNAL', 'the control API is not listening');
    return `${this.#security ? 'wss' : 'ws'}://${formatHostPort(this.#control.address())}`;
  }

  /** What peers cost this agent now, against its limits (tests, status). */
  availability(): AvailabilityStatus {
    return {
      limits: this.#limits,
      guestMemory: this.host.guestMemory,
      incoming: this.#incoming.inProgress,
      inHandshake: this.#listener?.inHandshake ?? 0,
    };
  }

  /** Where Prometheus scrapes this agent (http(s)://HOST:PORT/metrics); undefined without `metrics`. */
  get metricsUrl(): string | undefined {
    return this.#metricsServer?.url;
  }

  /** HOST:PORT migrations arrive on; undefined when this agent has no data port. */
  get dataAddress(): string | undefined {
    return this.#listener ? formatHostPort(this.#listener.address()) : undefined;
  }

  #handlers(): CommandHandlers {
    const outgoing = this.#outgoing;
    return {
      ...hostCommandHandlers(this.host, { digests: this.#digests }),
      cont: this.#cont,
      'create-vm': async ({ name, memory, init, workload, seed, nic, disk }) => {
        const spec = parseVmSpec({ memory, init, workload, seed, nic, disk });
        await this.host.create(VmHost.checkName(name), spec);
        return this.host.info(name);
      },
      migrate: ({ vm, to, mode, params, ticket, destName }, { caller }) => ({
        migrationId: this.migrate(vm, to, mode, params, { ticket, destName, operator: caller }),
      }),
      'prepare-incoming': ({ vm, from, ttlMs }) => {
        if (!this.#tickets) {
          throw new MigrationError(
            'ERR_INVALID_ARGUMENT',
            'this agent runs without --pki: it takes migrations without tickets',
          );
        }
        const issued = this.#tickets.issue({
          vm: VmHost.checkName(vm),
          from,
          ttlMs: ttlMs ?? this.#security?.ticketTtlMs,
        });
        return { ticket: issued.ticket, vm: issued.vm, from: issued.from, expiresAt: issued.expiresAt };
      },
      'query-migrate': ({ migrationId }) => queryMigrate(outgoing, this.#incoming, migrationId),
      'migrate-cancel': ({ migrationId }) => ({ cancelled: outgoing.find(migrationId)?.cancel() ?? false }),
      'migrate-start-postcopy': ({ migrationId }) => {
        outgoing.require(migrationId).startPostcopy();
        return { switching: true };
      },
      'migrate-resume': ({ migrationId }) => {
        // false: automatic recovery already reconnected — nothing to do, and no error.
        return { resuming: outgoing.require(migrationId).resumeNow() };
      },
      'query-report': ({ migrationId }) => outgoing.report(migrationId),
      'query-dirty-rate': (args) => this.#dirtyRates.query(args),
    };
  }

  /** Start migrating `vm` to another agent's data address; returns the migration id. */
  migrate(
    vm: string,
    to: string,
    mode?: string,
    params?: MigrateParams,
    security?: { ticket?: string; destName?: string; operator?: RecordOperator | null },
  ): string {
    return this.#outgoing.start(vm, to, mode, params, security);
  }

  /** Every outgoing migration's info, newest first (tests, status). */
  migrationInfos(): MigrationInfo[] {
    return this.#outgoing.infos();
  }

  async stop(reason: string): Promise<void> {
    // Stop accepting first; the listener's close resolves only once every connection has ended,
    // which is after the incoming migrations below have.
    const listenerClosed = this.#listener?.close();
    this.#dirtyRates.stop(reason);
    await Promise.all([this.#incoming.abortAll(reason), this.#outgoing.finish(reason, this.#graceMs)]);
    await listenerClosed;
    this.#metrics?.stop();
    await this.#metricsServer?.close();
    await this.#control?.close();
    await this.#audit?.close();
    await this.#digests.close();
    await this.host.removeAll();
  }
}

/** What node:tls needs of this agent's identity. */
function credentials(pki: LoadedPki): { ca: string; cert: string; key: string } {
  return { ca: pki.ca, cert: pki.cert, key: pki.key };
}

/** The destination side of mutual TLS: this agent's credentials and who may send it VMs. */
function destTls(security: AgentSecurity): DestTls {
  return { ...credentials(security.pki), allowSource: allowSourceMatcher(security.allowSource ?? []) };
}
