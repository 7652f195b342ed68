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
import { formatHostPort, MigrationError, type HostPort } from '@livemig/shared';
import { listenForPeers, type PeerListener } from '@livemig/shared/channel';
import { ControlServer, type CommandHandlers } from '@livemig/shared/control';
import { VmHost, hostCommandHandlers } from '@livemig/shared/host';
import { IncomingMigration } from './migration/incoming.ts';

export interface DestDaemonOptions {
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
  readonly #incoming = new Set<IncomingMigration>();
  readonly #running = new Set<Promise<void>>();
  readonly #maxMemoryBytes: number;
  #control!: ControlServer;
  #listener!: PeerListener;

  private constructor(options: DestDaemonOptions) {
    this.agentId = options.agentId ?? `dest-${randomUUID().slice(0, 8)}`;
    this.#logger = options.logger;
    this.#maxMemoryBytes = options.maxMemoryBytes ?? 16 * 2 ** 30;
    this.host = new VmHost((name, state) => this.#control?.emit('VM_STATE', { name, state }));
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

  #accept(peer: Parameters<Parameters<typeof listenForPeers>[0]['onPeer']>[0]): void {
    const logger = this.#logger.child({ role: 'dest', peer: peer.remoteAgentId });
    const migration = new IncomingMigration(
      {
        host: this.host,
        channel: peer.channel,
        applier: peer.applier,
        logger,
        emit: (event, data) => this.#control.emit(event, data),
      },
      { maxMemoryBytes: this.#maxMemoryBytes },
    );
    this.#incoming.add(migration);
    const done = migration.run().finally(() => {
      this.#incoming.delete(migration);
      this.#running.delete(done);
    });
    this.#running.add(done);
  }

  async stop(reason: string): Promise<void> {
    // Stop accepting first; the listener's close resolves only once every connection has ended,
    // which is after the aborts below.
    const listenerClosed = this.#listener.close();
    const error = new MigrationError('ERR_PEER_ABORTED', `destination agent shutting down (${reason})`);
    for (const migration of this.#incoming) migration.abort(error);
    await Promise.allSettled([...this.#running]);
    await listenerClosed;
    await this.#control.close();
    await this.host.removeAll();
  }
}
