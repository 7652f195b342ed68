/**
 * The destination agent: listens for migrations on its data port, runs one IncomingMigration
 * per connection, and keeps hosting the VMs it received (they run here afterwards and answer
 * the same VM commands as on the source).
 *
 * Shutdown (SIGTERM): migrations that have not handed off yet are aborted — the source still
 * owns those VMs and resumes them — before the process exits.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { formatHostPort, MigrationError, toMigrationError, type HostPort } from '@livemig/shared';
import { listenForPeers, messageName, MsgType, type AcceptedPeer, type PeerListener } from '@livemig/shared/channel';
import type { AttachChannel, SetupMsg } from '@livemig/shared/protocol';
import { ControlServer, type CommandHandlers } from '@livemig/shared/control';
import { VmHost, hostCommandHandlers, type VmHostOptions } from '@livemig/shared/host';
import { IncomingMigration } from './migration/incoming.ts';

export interface DestDaemonOptions {
  /** How VMs with a NIC get their address here. @default loopback (bind the VM's ip:port on this host) */
  addressMover?: VmHostOptions['addressMover'];
  listen: HostPort;
  control: HostPort;
  logger: Logger;
  agentId?: string;
  /** Largest VM accepted. @default 16 GiB */
  maxMemoryBytes?: number;
}

export class DestDaemon {
  readonly agentId: string;
  readonly host: VmHost;
  readonly #logger: Logger;
  readonly #incoming = new Map<string, IncomingMigration>();
  readonly #running = new Set<Promise<void>>();
  readonly #maxMemoryBytes: number;
  #control!: ControlServer;
  #listener!: PeerListener;

  private constructor(options: DestDaemonOptions) {
    this.agentId = options.agentId ?? `dest-${randomUUID().slice(0, 8)}`;
    this.#logger = options.logger;
    this.#maxMemoryBytes = options.maxMemoryBytes ?? 16 * 2 ** 30;
    this.host = new VmHost({
      onState: (name, state) => this.#control?.emit('VM_STATE', { name, state }),
      logger: options.logger,
      addressMover: options.addressMover,
    });
  }

  static async start(options: DestDaemonOptions): Promise<DestDaemon> {
    const daemon = new DestDaemon(options);
    daemon.#control = await ControlServer.start(
      { host: options.control.host, port: options.control.port, logger: options.logger },
      daemon.#handlers(),
    );
    daemon.#listener = await listenForPeers({
      ...options.listen,
      agentId: daemon.agentId,
      logger: options.logger,
      onPeer: (peer) => daemon.#accept(peer),
    });
    options.logger.info(
      { listen: daemon.dataAddress, control: daemon.controlUrl, agentId: daemon.agentId },
      'destination agent listening',
    );
    return daemon;
  }

  get dataAddress(): string {
    return formatHostPort(this.#listener.address());
  }

  get controlUrl(): string {
    return `ws://${formatHostPort(this.#control.address())}`;
  }

  #handlers(): CommandHandlers {
    return {
      ...hostCommandHandlers(this.host),
      'query-migrate': () => null,
    };
  }

  /**
   * A peer finished the handshake. Its first message says what it is: Setup starts a migration;
   * Attach joins one in progress (the post-copy fault channel, or a reconnect after a broken link).
   */
  #accept(peer: AcceptedPeer): void {
    const logger = this.#logger.child({ role: 'dest', peer: peer.remoteAgentId });
    peer.channel
      .next()
      .then((first) => {
        if (first.type === MsgType.Setup) return this.#startIncoming(peer, first, logger);
        if (first.type === MsgType.Attach) return this.#attach(peer, first.migrationId, first.channel);
        throw new MigrationError(
          'ERR_UNEXPECTED_MESSAGE',
          `a connection must start with Setup or Attach, not ${messageName(first.type)}`,
        );
      })
      .catch((error: unknown) => {
        const failure = toMigrationError(error, 'ERR_CONNECTION');
        logger.warn({ err: failure }, 'dropped a connection');
        peer.channel.abort(failure);
      });
  }

  #startIncoming(peer: AcceptedPeer, setup: SetupMsg, logger: Logger): void {
    const migration = new IncomingMigration(
      {
        host: this.host,
        channel: peer.channel,
        applier: peer.applier,
        logger: logger.child({ migrationId: setup.migrationId }),
        emit: (event, data) => this.#control.emit(event, data),
      },
      { maxMemoryBytes: this.#maxMemoryBytes },
    );
    this.#incoming.set(setup.migrationId, migration);
    const done = migration.run(setup).finally(() => {
      this.#incoming.delete(setup.migrationId);
      this.#running.delete(done);
    });
    this.#running.add(done);
  }

  #attach(peer: AcceptedPeer, migrationId: string, channel: AttachChannel): void {
    const migration = this.#incoming.get(migrationId);
    if (!migration) throw new MigrationError('ERR_NOT_FOUND', `no migration ${migrationId} in progress here`);
    if (channel === 'fault') migration.attachFaultChannel(peer.channel, peer.applier);
    else migration.resume(peer.channel, peer.applier);
  }

  async stop(reason: string): Promise<void> {
    // Stop accepting first; the listener's close resolves only once every connection has ended,
    // which is after the aborts below.
    const listenerClosed = this.#listener.close();
    const error = new MigrationError('ERR_PEER_ABORTED', `destination agent shutting down (${reason})`);
    for (const migration of this.#incoming.values()) migration.abort(error);
    await Promise.allSettled([...this.#running]);
    await listenerClosed;
    await this.#control.close();
    await this.host.removeAll();
  }
}
