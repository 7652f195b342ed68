/**
 * A peer that speaks the data protocol but not in good faith, for the availability tests: it
 * passes every check a destination makes of a peer (mutual TLS as an allowed agent, a valid
 * ticket) and then asks for more than it should get — a VM past the guest-memory budget, one
 * migration too many — or sets up and then only keeps the link alive (its heartbeats go on)
 * without ever sending a page.
 */
import { silentLogger, type MigrationError } from '@livemig/shared';
import { connectPeer, msg, type PeerChannel, type SourceTls } from '@livemig/shared/channel';
import type { Message } from '@livemig/shared/protocol';
import { PAGE_SIZE } from '@livemig/shared/vm';

export interface RogueSetup {
  /** The VM's name (a ticket is bound to it). */
  name: string;
  memoryBytes: number;
  ticket?: string;
  /** Send a Setup bitmap naming every page, so the destination pre-faults all of the VM's memory. @default true */
  everyPage?: boolean;
}

export interface RoguePeer {
  channel: PeerChannel;
  /** The destination's answer to Setup: SetupDone, or the error it refused with. */
  answer: Promise<Message | MigrationError>;
  /** After a SetupDone: how the destination ended the connection, and when (performance.now()). */
  ended: Promise<{ error: unknown; at: number }>;
  /** When Setup was sent (performance.now()). */
  sentAt: number;
}

/** Connect to `address` (HOST:PORT) as an agent of the fleet and send Setup; heartbeats every `heartbeatMs`. */
export async function sendRogueSetup(
  address: string,
  tls: SourceTls | undefined,
  setup: RogueSetup,
  heartbeatMs = 50,
): Promise<RoguePeer> {
  const [host, port] = address.split(':') as [string, string];
  const channel = await connectPeer({
    host,
    port: Number(port),
    agentId: `rogue-${setup.name}`,
    logger: silentLogger(),
    socket: { heartbeatIntervalMs: heartbeatMs, idleTimeoutMs: 0 },
    ...(tls ? { tls } : {}),
  });
  const pageCount = setup.memoryBytes / PAGE_SIZE;
  channel.send(
    msg.setup({
      migrationId: `rogue-${setup.name}-${Math.random().toString(16).slice(2)}`,
      mode: 'precopy',
      vm: {
        name: setup.name,
        memoryBytes: setup.memoryBytes,
        pageSize: PAGE_SIZE,
        workload: 'idle',
        init: 'zero',
        seed: 1,
        nic: '',
      },
      ...(setup.ticket ? { ticket: setup.ticket } : {}),
      ...(setup.everyPage === false ? {} : { bitmap: new Uint8Array(Math.ceil(pageCount / 8)).fill(0xff) }),
    }),
  );
  const sentAt = performance.now();
  const answer = channel.next().catch((error: unknown) => error as MigrationError);
  const ended = answer.then(() =>
    channel.next().then(
      (message) => ({ error: new Error(`unexpected ${message.type}`), at: performance.now() }),
      (error: unknown) => ({ error, at: performance.now() }),
    ),
  );
  return { channel, answer, ended, sentAt };
}
