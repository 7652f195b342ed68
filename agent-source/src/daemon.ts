/**
 * The source agent: hosts running VMs and migrates them out. Components: a VmHost (the VMs),
 * a ControlServer (QMP-like commands and events), and one OutgoingMigration per migration.
 *
 * Shutdown (SIGTERM): a migration still iterating is told to switch over now and given time
 * to finish, because the VM dies with this process — finishing leaves it running on the
 * destination; VMs not migrating simply stop with their host.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { MigrationError, parseHostPort, formatHostPort, type HostPort } from '@livemig/shared';
import { connectPeer } from '@livemig/shared/channel';
import { ControlServer, type CommandHandlers, type MigrationInfo } from '@livemig/shared/control';
import type { MigrationReport } from '@livemig/shared/report';
import { VmHost, hostCommandHandlers, type VmHostOptions } from '@livemig/shared/host';
import { parseVmSpec } from '@livemig/shared/vm';
import { OutgoingMigration } from './migration/outgoing.ts';
import { resolveMigrateParams } from './migration/params.ts';

export interface SourceDaemonOptions {
  /** How VMs with a NIC get their address here. @default loopback (bind the VM's ip:port on this host) */
  addressMover?: VmHostOptions['addressMover'];
  control: HostPort;
  logger: Logger;
  agentId?: string;
  /** How long shutdown waits for migrations in flight. @default 30000 */
  shutdownGraceMs?: number;
}

export class SourceDaemon {
  readonly agentId: string;
  readonly host: VmHost;
  readonly #logger: Logger;
  /** Migrations by id: in flight, or — once over — a record of how they ended (the VM let go). */
  readonly #migrations = new Map<string, OutgoingMigration | FinishedMigration>();
  readonly #running = new Set<Promise<unknown>>();
  #control!: ControlServer;
  readonly #graceMs: number;

  private constructor(options: SourceDaemonOptions) {
    this.agentId = options.agentId ?? `source-${randomUUID().slice(0, 8)}`;
    this.#logger = options.logger;
    this.#graceMs = options.shutdownGraceMs ?? 30_000;
    this.host = new VmHost({
      onState: (name, state) => this.#control?.emit('VM_STATE', { name, state }),
      logger: options.logger,
      addressMover: options.addressMover,
    });
  }

  static async start(options: SourceDaemonOptions): Promise<SourceDaemon> {
    const daemon = new SourceDaemon(options);
    daemon.#control = await ControlServer.start(
      { host: options.control.host, port: options.control.port, logger: options.logger },
      daemon.#handlers(),
    );
    options.logger.info({ control: daemon.controlUrl, agentId: daemon.agentId }, 'source agent listening');
    return daemon;
  }

  get controlUrl(): string {
    return `ws://${formatHostPort(this.#control.address())}`;
  }

  #handlers(): CommandHandlers {
    return {
      ...hostCommandHandlers(this.host),
      'create-vm': async ({ name, memory, init, workload, seed, nic }) => {
        const spec = parseVmSpec({ memory, init, workload, seed, nic });
        await this.host.create(VmHost.checkName(name), spec);
        return this.host.info(name);
      },
      migrate: ({ vm, to, mode, params }) => ({ migrationId: this.migrate(vm, to, mode, params) }),
      'query-migrate': ({ migrationId }) => this.#find(migrationId)?.info() ?? null,
      'migrate-cancel': ({ migrationId }) => ({ cancelled: this.#find(migrationId)?.cancel() ?? false }),
      'migrate-start-postcopy': ({ migrationId }) => {
        this.#require(migrationId).startPostcopy();
        return { switching: true };
      },
      'migrate-resume': ({ migrationId }) => {
        this.#require(migrationId).resumeNow();
        return { resuming: true };
      },
      'query-report': ({ migrationId }) => this.#migrations.get(migrationId)?.report ?? null,
    };
  }

  /** Start migrating `vmName` to the destination's data address; returns the migration id. */
  migrate(
    vmName: string,
    to: string,
    mode: string | undefined,
    params: Parameters<typeof resolveMigrateParams>[1],
  ): string {
    const hosted = this.host.get(VmHost.checkName(vmName));
    if (hosted.state !== 'running') {
      throw new MigrationError('ERR_VM_STATE', `cannot migrate "${vmName}": it is ${hosted.state}, not running`);
    }
    const target = parseHostPort(to, 'destination');
    const resolved = resolveMigrateParams(mode, params);
    const migrationId = randomUUID();
    const logger = this.#logger.child({ migrationId, role: 'source', vm: vmName });
    const migration = new OutgoingMigration(
      {
        hosted,
        logger,
        connect: (signal) => connectPeer({ ...target, agentId: this.agentId, logger, signal }),
        emit: (event, data) => this.#control.emit(event, data),
        setVmState: (state) => this.host.setState(hosted.name, state),
      },
      { migrationId, to: formatHostPort(target), params: resolved },
    );
    this.#migrations.set(migrationId, migration);
    const done = migration
      .run()
      .then(async (report) => {
        // Keep the figures, drop the migration object and with it every reference to the VM.
        this.#migrations.set(migrationId, new FinishedMigration(migration.info(), report));
        if (report.outcome === 'completed') await this.host.retire(hosted.name);
      })
      .catch((error: unknown) => logger.error({ err: error }, 'migration bookkeeping failed'))
      .finally(() => this.#running.delete(done));
    this.#running.add(done);
    return migrationId;
  }

  /** The migration with this id, or the newest one (active first) when no id is given. */
  #find(migrationId: string | undefined): OutgoingMigration | FinishedMigration | undefined {
    if (migrationId !== undefined) {
      const found = this.#migrations.get(migrationId);
      if (!found) throw new MigrationError('ERR_NOT_FOUND', `no migration ${migrationId} on this agent`);
      return found;
    }
    const all = [...this.#migrations.values()];
    return all.reverse().find((m) => m.active) ?? all[0];
  }

  /** The migration with this id (or the newest active one); ERR_NOT_FOUND when there is none. */
  #require(migrationId: string | undefined): OutgoingMigration | FinishedMigration {
    const found = this.#find(migrationId);
    if (!found) throw new MigrationError('ERR_NOT_FOUND', 'no migration on this agent');
    return found;
  }

  /** All migration infos (newest first), for tests and status. */
  migrationInfos(): MigrationInfo[] {
    return [...this.#migrations.values()].reverse().map((m) => m.info());
  }

  async stop(reason: string): Promise<void> {
    const active = [...this.#migrations.values()].filter((m): m is OutgoingMigration => m.active);
    if (active.length) {
      this.#logger.warn({ reason, migrations: active.length }, 'shutting down: finishing migrations in flight');
      for (const migration of active) migration.switchoverNow();
      const grace = new Promise((resolve) => setTimeout(resolve, this.#graceMs).unref());
      await Promise.race([Promise.allSettled([...this.#running]), grace]);
      for (const migration of active) {
        try {
          migration.cancel();
        } catch (error) {
          this.#logger.error({ err: error }, 'could not cancel a migration past its point of no return');
        }
      }
      await Promise.allSettled([...this.#running]);
    }
    await this.#control.close();
    await this.host.removeAll();
  }
}

/** A migration that is over: its last live figures and its report, nothing of the VM. */
class FinishedMigration {
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
