/**
 * The migrations an agent runs out: one OutgoingMigration (@livemig/agent-source) per `migrate`,
 * kept by id so `query-migrate`, `migrate-cancel`, `migrate-start-postcopy`, `migrate-resume`
 * and `query-report` find it.
 *
 * A VM that left keeps only its record: once a migration is over its object is replaced by a
 * FinishedMigration — its last live figures and its report, nothing of the VM — and when it
 * completed the host retires the VM (memory and vCPU freed, a `migrated` entry kept for
 * query-vms). The closures handed to the migration name the VM, never hold it, so nothing here
 * keeps a VM that left alive.
 *
 * Shutdown: a migration still iterating is told to switch over now and given a grace period,
 * because the VM dies with this process — finishing leaves it running on the destination; what
 * is still in flight after that is cancelled where the source still owns the VM.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { MigrationError, parseHostPort, formatHostPort, type HostPort } from '@livemig/shared';
import {
  linkSampleOf,
  OutgoingMigration,
  resolveMigrateParams,
  type LinkSample,
  type OutgoingComponents,
} from '@livemig/agent-source';
import { connectPeer, type PeerChannel, type SourceTls } from '@livemig/shared/channel';
import type { MigrateParams, MigrationInfo } from '@livemig/shared/control';
import { VmHost } from '@livemig/shared/host';
import type { Capability } from '@livemig/shared/protocol';
import type { MigrationReport } from '@livemig/shared/report';
import type { LoadedPki, RecordOperator } from '@livemig/shared/security';
import type { HandedTo } from './forced-cont.ts';

export interface OutgoingMigrationsComponents {
  host: VmHost;
  /** This agent's name in the handshake. */
  agentId: string;
  logger: Logger;
  emit: OutgoingComponents['emit'];
  /** What to offer in the handshake. @default OFFERED_CAPABILITIES */
  capabilities?: readonly Capability[];
  /** This agent's credentials: connect with mutual TLS, checking the destination's name. @default plaintext */
  pki?: LoadedPki;
  /**
   * Why `vm` cannot leave yet because it is still arriving here (post-copy: pages still absent),
   * or undefined when it can.
   */
  stillArriving: (vm: string) => string | undefined;
  /** Sign each migration's record with this key (OutgoingComponents.signer). */
  signer?: OutgoingComponents['signer'];
  /** Keep each migration's record (the audit log) before its report goes out. */
  keepRecord?: OutgoingComponents['keepRecord'];
  /** Told of every data connection opened to a destination (the metrics count its bytes). */
  onChannel?: (channel: PeerChannel) => void;
  /** Told each migration's report once it is over (the metrics). */
  onReport?: (report: MigrationReport) => void;
}

/** An outgoing migration, in flight or over. */
export type OutgoingRecord = OutgoingMigration | FinishedMigration;

/** Destinations whose link this agent remembers for --mode auto (the most recent). */
const MAX_LINK_HISTORY = 256;

export class OutgoingMigrations {
  readonly #c: OutgoingMigrationsComponents;
  /** By id, in the order they started: in flight, or — once over — a record of how they ended. */
  readonly #migrations = new Map<string, OutgoingRecord>();
  readonly #running = new Set<Promise<void>>();
  /** Per VM, where its last migration from here was taking it (asked before a forced cont: forced-cont.ts). */
  readonly #handedTo = new Map<string, HandedTo>();
  /** Per destination address, the link as the last migration there measured it (--mode auto). */
  readonly #links = new Map<string, LinkSample>();

  constructor(components: OutgoingMigrationsComponents) {
    this.#c = components;
  }

  /** Start migrating `vmName` to a destination's data address; returns the migration id. */
  start(
    vmName: string,
    to: string,
    mode?: string,
    params?: MigrateParams,
    security: {
      ticket?: string | undefined;
      destName?: string | undefined;
      /** Who asked (the verified control caller), for the record. */
      operator?: RecordOperator | null | undefined;
    } = {},
  ): string {
    const { host, agentId } = this.#c;
    const name = VmHost.checkName(vmName);
    const hosted = host.get(name);
    if (hosted.state !== 'running') {
      throw new MigrationError('ERR_VM_STATE', `cannot migrate "${name}": it is ${hosted.state}, not running`);
    }
    const arriving = this.#c.stillArriving(name);
    if (arriving !== undefined) throw new MigrationError('ERR_BUSY', `cannot migrate "${name}" yet: ${arriving}`);
    const target = parseHostPort(to, 'destination');
    const pki = this.#c.pki;
    if (pki && !security.destName) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        "give destName: the name the destination's certificate must carry",
      );
    }
    const tls = pki ? { ca: pki.ca, cert: pki.cert, key: pki.key, expectName: security.destName! } : undefined;
    const resolved = resolveMigrateParams(mode, params);
    const migrationId = randomUUID();
    const logger = this.#c.logger.child({ migrationId, role: 'source', vm: name });
    const connect = connector({
      target,
      agentId,
      logger,
      capabilities: this.#c.capabilities,
      tls,
      onChannel: this.#c.onChannel,
    });
    this.#handedTo.set(name, { migrationId, to: formatHostPort(target), connect });
    const migration = new OutgoingMigration(
      {
        hosted,
        logger,
        connect,
        // Parallel bulk channels reach the destination's data host, with the same TLS identity check.
        multifdTarget: { host: target.host, ...(tls ? { tls } : {}) },
        emit: this.#c.emit,
        setVmState: (state) => host.setState(name, state),
        ...(this.#c.signer ? { signer: this.#c.signer } : {}),
        ...(this.#c.keepRecord ? { keepRecord: this.#c.keepRecord } : {}),
      },
      {
        migrationId,
        to: formatHostPort(target),
        params: resolved,
        ticket: security.ticket ?? '',
        ...(pki ? { sourceName: pki.identity.name } : {}),
        agentName: pki?.identity.name ?? agentId,
        operator: security.operator ?? null,
        ...(this.#links.has(formatHostPort(target)) ? { linkHint: this.#links.get(formatHostPort(target))! } : {}),
      },
    );
    this.#migrations.set(migrationId, migration);
    const done = migration
      .run()
      .then(async (report) => {
        // Keep the figures, drop the migration object and with it every reference to the VM.
        this.#migrations.set(migrationId, new FinishedMigration(migration.info(), report));
        this.#c.onReport?.(report);
        const sample = linkSampleOf(report, this.#links.get(formatHostPort(target)));
        if (sample) {
          // Newest last; bounded: an agent sending to ever new addresses forgets the oldest.
          this.#links.delete(formatHostPort(target));
          this.#links.set(formatHostPort(target), sample);
          if (this.#links.size > MAX_LINK_HISTORY) this.#links.delete(this.#links.keys().next().value!);
        }
        if (report.outcome === 'completed') await host.retire(name);
      })
      .catch((error: unknown) => logger.error({ err: error }, 'migration bookkeeping failed'))
      .finally(() => this.#running.delete(done));
    this.#running.add(done);
    return migrationId;
  }

  /** The migration with this id, or the newest one (active first) when no id is given. */
  find(migrationId: string | undefined): OutgoingRecord | undefined {
    if (migrationId !== undefined) {
      const found = this.#migrations.get(migrationId);
      if (!found) throw new MigrationError('ERR_NOT_FOUND', `no migration ${migrationId} on this agent`);
      return found;
    }
    const all = [...this.#migrations.values()];
    return all.reverse().find((m) => m.active) ?? all[0];
  }

  /** The migration with this id (or the newest active one); ERR_NOT_FOUND when there is none. */
  require(migrationId: string | undefined): OutgoingRecord {
    const found = this.find(migrationId);
    if (!found) throw new MigrationError('ERR_NOT_FOUND', 'no migration on this agent');
    return found;
  }

  /** Where `vm`'s last migration from here was taking it (its destination, and how to reach it). */
  handedTo(vm: string): HandedTo | undefined {
    return this.#handedTo.get(vm);
  }

  /** The report of a migration that is over (null while it runs or when there is no such id). */
  report(migrationId: string): MigrationReport | null {
    return this.#migrations.get(migrationId)?.report ?? null;
  }

  /** All migration infos, newest first. */
  infos(): MigrationInfo[] {
    return [...this.#migrations.values()].reverse().map((m) => m.info());
  }

  /** The live figures of the migrations in flight (their VMs' dirty logs are theirs alone). */
  inFlight(): MigrationInfo[] {
    return [...this.#migrations.values()].filter((m) => m.active).map((m) => m.info());
  }

  /**
   * Shutdown: switch every migration in flight over now, wait up to `graceMs` for them to end,
   * cancel the ones still short of their point of no return, then wait for all to end.
   */
  async finish(reason: string, graceMs: number): Promise<void> {
    const active = [...this.#migrations.values()].filter((m): m is OutgoingMigration => m.active);
    if (active.length === 0) return;
    this.#c.logger.warn({ reason, migrations: active.length }, 'shutting down: finishing migrations in flight');
    for (const migration of active) migration.switchoverNow();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([Promise.allSettled([...this.#running]), grace]);
    clearTimeout(timer);
    for (const migration of active) {
      try {
        migration.cancel();
      } catch (error) {
        this.#c.logger.error({ err: error }, 'could not cancel a migration past its point of no return');
      }
    }
    await Promise.allSettled([...this.#running]);
  }
}

/** A migration that is over: its last live figures and its report, nothing of the VM. */
export class FinishedMigration {
  readonly active = false;
  readonly #info: MigrationInfo;
  readonly report: MigrationReport;

  constructor(info: MigrationInfo, report: MigrationReport) {
    this.#info = info;
    this.report = report;
  }

  info(): MigrationInfo {
    return this.#info;
  }

  cancel(): boolean {
    return false;
  }

  startPostcopy(): never {
    throw new MigrationError('ERR_VM_STATE', `the migration is over (${this.report.outcome})`);
  }

  resumeNow(): never {
    throw new MigrationError('ERR_VM_STATE', `the migration is over (${this.report.outcome})`);
  }
}

/**
 * How to reach a migration's destination, made outside `start()` on purpose: a closure shares its
 * scope's context with every other closure there, so one made in `start()` — and kept in
 * #handedTo after the migration — would keep the migrated VM (and its guest memory) alive.
 */
function connector(options: {
  target: HostPort;
  agentId: string;
  logger: Logger;
  capabilities: readonly Capability[] | undefined;
  tls: SourceTls | undefined;
  onChannel: ((channel: PeerChannel) => void) | undefined;
}): OutgoingComponents['connect'] {
  const { target, agentId, logger, capabilities, tls, onChannel } = options;
  return async (signal, port) => {
    const channel = await connectPeer({
      ...target,
      ...(port === undefined ? {} : { port }),
      agentId,
      logger,
      signal,
      ...(capabilities ? { capabilities } : {}),
      ...(tls ? { tls } : {}),
    });
    onChannel?.(channel);
    return channel;
  };
}
