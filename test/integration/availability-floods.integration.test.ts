/**
 * Availability, connections and migrations in flight (issue 13): a secure destination (in this
 * process, real sockets, a throwaway PKI) with small limits and short deadlines — so the test
 * waits for deadlines of a few seconds, not 5 s × N — flooded while a legitimate migration
 * runs through it:
 *
 *   - idle and half-open connections (TCP that never speaks, half a TLS ClientHello, TLS done
 *     but no Hello, a finished handshake with no first message — the last two sending
 *     heartbeats): each is closed at its handshake deadline, never before;
 *   - connections beyond the limit of those in their handshake: refused at once, before TLS,
 *     with ERR_TOO_MANY_CONNECTIONS;
 *   - one incoming migration beyond --max-incoming: refused at Setup with ERR_TOO_MANY_INCOMING
 *     (its ticket stays unspent); a Setup followed by heartbeats and no page: discarded at the
 *     setup deadline.
 *
 * Every wait is on observed state (the daemon's availability(), a socket's close), never a sleep.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentDaemon } from '@livemig/agent';
import { silentLogger } from '@livemig/shared';
import { connectPeer, type SourceTls } from '@livemig/shared/channel';
import type { ControlClient, MigrateParams } from '@livemig/shared/control';
import { decodeFrames, encodeFrameBytes, msg, MsgType, type Message } from '@livemig/shared/protocol';
import type { MigrationReport } from '@livemig/shared/report';
import { loadPki } from '@livemig/shared/security';
import { parseVmSpec } from '@livemig/shared/vm';
import { followMigration } from '../../cli/follow-migration.ts';
import { createThrowawayPki, type ThrowawayPki } from '../../cli/throwaway-pki.ts';
import { expectCompleted } from '../helpers/report.ts';
import { sendRogueSetup } from '../helpers/rogue-peer.ts';
import { waitUntil } from '../helpers/wait.ts';

const LOOPBACK = { host: '127.0.0.1', port: 0 };
const DEST = 'dest-b';
const LIMITS = { maxUnauthenticated: 6, maxIncoming: 2, handshakeTimeoutMs: 2000, setupTimeoutMs: 3000 };
/** How late after its deadline a connection may be closed on a loaded machine. */
const LATE_MS = 4000;
const TEST_TIMEOUT_MS = 60_000;
const MiB = 2 ** 20;
/** 16 MiB at 3 MiB/s: the legitimate migration runs ~5 s, through the flood. */
const SLOW: MigrateParams = { maxBandwidthBps: 3 * MiB };

let pki: ThrowawayPki;
const daemons: AgentDaemon[] = [];
const sockets: net.Socket[] = [];

beforeAll(async () => {
  const agents = ['src-a', DEST, 'src-mallory'].map((name) => ({ name, role: 'agent' as const }));
  pki = await createThrowawayPki([...agents, { name: 'oscar', role: 'operator' }], 'livemig-floods-');
});
afterAll(() => pki.remove());
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(daemons.splice(0).map((daemon) => daemon.stop('test over')));
});

/** src-a hosting `vm` (16 MiB, idle guest), and dest-b with the small limits, taking VMs from src-*. */
async function pair(): Promise<{ a: AgentDaemon; b: AgentDaemon }> {
  const start = async (name: string, extra: object = {}): Promise<AgentDaemon> => {
    const security = { pki: await loadPki(pki.dir, name), allowSource: ['src-*'] };
    const daemon = await AgentDaemon.start({
      control: LOOPBACK,
      listen: LOOPBACK,
      logger: silentLogger(),
      security,
      ...extra,
    });
    daemons.push(daemon);
    return daemon;
  };
  const [a, b] = await Promise.all([start('src-a'), start(DEST, LIMITS)]);
  await a.host.create('vm', parseVmSpec({ memory: '16MiB', init: 'random', workload: 'idle', seed: 4 }));
  return { a, b };
}

/** An operator's request to an agent (wss, client certificate; the agent's name is `expectName`). */
async function request<T>(
  daemon: AgentDaemon,
  expectName: string,
  run: (client: ControlClient) => Promise<T>,
): Promise<T> {
  const client = await pki.connect(daemon.controlUrl, 'oscar', expectName);
  try {
    return await run(client);
  } finally {
    client.close();
  }
}

function ticketFor(b: AgentDaemon, vm: string, from: string): Promise<string> {
  return request(b, DEST, async (client) => (await client.request('prepare-incoming', { vm, from })).ticket);
}

/** The legitimate migration of `vm` from a to b, with its ticket, slow enough to last through the flood. */
async function migrate(a: AgentDaemon, b: AgentDaemon): Promise<MigrationReport> {
  const ticket = await ticketFor(b, 'vm', 'src-a');
  return request(a, 'src-a', async (client) => {
    const args = { vm: 'vm', to: b.dataAddress!, ticket, destName: DEST, params: SLOW };
    const { migrationId } = await client.request('migrate', args);
    return followMigration(client, migrationId, { progress: false });
  });
}

/** src-mallory's credentials: an agent of the fleet that b's --allow-source lets in. */
async function mallory(): Promise<SourceTls> {
  return { ...(await loadPki(pki.dir, 'src-mallory')), expectName: DEST };
}

/** A connection of the flood: what it received, and when it was opened and closed (performance.now()). */
interface FloodConnection {
  kind: string;
  openedAt: number;
  closed: Promise<number>;
  frames(): Message[];
}

/** Open a connection to b's data port that does `behave` once connected, and keep what it receives. */
function flood(
  b: AgentDaemon,
  kind: string,
  behave: 'silent' | 'half-hello' | 'tls-idle',
  creds?: SourceTls,
): FloodConnection {
  const [host, port] = b.dataAddress!.split(':') as [string, string];
  const received: Buffer[] = [];
  const openedAt = performance.now();
  let socket: net.Socket;
  if (behave === 'tls-idle') {
    const { ca, cert, key } = creds!;
    socket = tls.connect({
      host,
      port: Number(port),
      ca,
      cert,
      key,
      minVersion: 'TLSv1.3',
      checkServerIdentity: () => undefined,
    });
    // Heartbeats, and never a Hello: they do not extend the deadline.
    const beat = setInterval(() => socket.writable && socket.write(encodeFrameBytes(msg.heartbeat(1))), 100);
    socket.once('close', () => clearInterval(beat));
  } else {
    socket = net.connect({ host, port: Number(port) });
    // A TLS record header announcing 200 bytes of ClientHello, and one of them.
    if (behave === 'half-hello')
      socket.once('connect', () => socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01])));
  }
  sockets.push(socket);
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
  return { kind, openedAt, closed, frames: () => decodeFrames(Buffer.concat(received)) };
}

const errorCodes = (frames: Message[]): string[] =>
  frames.flatMap((frame) => (frame.type === MsgType.Error ? [frame.code] : []));

describe('availability: floods of connections and migrations', () => {
  it(
    'idle and half-open connections are closed at their handshake deadline; those beyond the limit are refused (ERR_TOO_MANY_CONNECTIONS); a legitimate migration completes meanwhile',
    async () => {
      const { a, b } = await pair();
      const legit = migrate(a, b);
      await waitUntil(() => b.availability().incoming === 1 && b.availability().inHandshake === 0, {
        what: 'the legitimate migration set up on b',
      });
      const creds = await mallory();
      // One that finishes the handshake and then sends only heartbeats (it no longer counts)…
      const startedAt = performance.now();
      const handshaken = await connectPeer({
        ...hostPort(b),
        agentId: 'src-mallory',
        logger: silentLogger(),
        tls: creds,
        socket: { heartbeatIntervalMs: 50, idleTimeoutMs: 0 },
      });
      const firstMessageWait = handshaken.next().then(
        () => ({ error: new Error('b sent a message'), at: performance.now() }),
        (error: unknown) => ({ error, at: performance.now() }),
      );
      // …and exactly the limit of connections in their handshake, of every kind.
      const idle = [
        flood(b, 'tcp, silent', 'silent'),
        flood(b, 'tcp, silent', 'silent'),
        flood(b, 'half a ClientHello', 'half-hello'),
        flood(b, 'half a ClientHello', 'half-hello'),
        flood(b, 'TLS done, heartbeats, no Hello', 'tls-idle', creds),
        flood(b, 'TLS done, heartbeats, no Hello', 'tls-idle', creds),
      ];
      await waitUntil(() => b.availability().inHandshake === LIMITS.maxUnauthenticated && b.availability(), {
        what: `${LIMITS.maxUnauthenticated} connections in their handshake on b`,
      });
      // Beyond the limit: refused at once, before TLS, in plaintext a raw client can read.
      const beyond = [0, 1, 2, 3].map(() => flood(b, 'beyond the limit', 'silent'));
      for (const connection of beyond) {
        const closedAt = await connection.closed;
        expect(errorCodes(connection.frames())).toEqual(['ERR_TOO_MANY_CONNECTIONS']);
        expect(closedAt - connection.openedAt).toBeLessThan(LIMITS.handshakeTimeoutMs);
      }
      // A TLS source beyond the limit gets no TLS, and is told why as well as TLS allows.
      await expect(
        connectPeer({ ...hostPort(b), agentId: 'src-mallory', logger: silentLogger(), tls: creds }),
      ).rejects.toMatchObject({
        code: 'ERR_CONNECTION',
        message: expect.stringMatching(/ERR_TOO_MANY_CONNECTIONS/),
      });
      // Each idle connection is closed at its deadline — not before, and not much after.
      for (const connection of idle) {
        const lifetime = (await connection.closed) - connection.openedAt;
        expect(lifetime, connection.kind).toBeGreaterThanOrEqual(LIMITS.handshakeTimeoutMs - 5);
        expect(lifetime, connection.kind).toBeLessThan(LIMITS.handshakeTimeoutMs + LATE_MS);
        // Past TLS, it is told why.
        if (connection.kind.startsWith('TLS')) expect(errorCodes(connection.frames())).toEqual(['ERR_TIMEOUT']);
      }
      const { error, at } = await firstMessageWait;
      expect(error).toMatchObject({ code: 'ERR_TIMEOUT' });
      expect(at - startedAt).toBeGreaterThanOrEqual(LIMITS.handshakeTimeoutMs - 5);
      expect(at - startedAt).toBeLessThan(LIMITS.handshakeTimeoutMs + LATE_MS);
      await handshaken.close();
      // The agent served the rest all along.
      const report = await legit;
      expectCompleted(report);
      expect(report.verify.match).toBe(true);
      expect(b.host.get('vm').state).toBe('running');
      expect(b.availability()).toMatchObject({ incoming: 0, inHandshake: 0 });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'an incoming migration beyond --max-incoming is refused at Setup (ERR_TOO_MANY_INCOMING, its ticket unspent); one that sends heartbeats and no page is discarded at the setup deadline; a legitimate one completes',
    async () => {
      const { a, b } = await pair();
      const legit = migrate(a, b);
      await waitUntil(() => b.availability().incoming === 1, { what: 'the legitimate migration set up on b' });
      const creds = await mallory();
      const idler = await sendRogueSetup(b.dataAddress!, creds, {
        name: 'idler',
        memoryBytes: 8 * MiB,
        ticket: await ticketFor(b, 'idler', 'src-mallory'),
      });
      expect(((await idler.answer) as Message).type).toBe(MsgType.SetupDone);
      expect(b.availability().incoming).toBe(LIMITS.maxIncoming);
      // One too many: refused before its ticket is looked at.
      const ticket = await ticketFor(b, 'third', 'src-mallory');
      const third = await sendRogueSetup(b.dataAddress!, creds, { name: 'third', memoryBytes: 8 * MiB, ticket });
      expect(await third.answer).toMatchObject({ code: 'ERR_TOO_MANY_INCOMING' });
      // The idler's heartbeats do not extend its setup deadline: discarded, its memory given back.
      const { error, at } = await idler.ended;
      expect(error).toMatchObject({ code: 'ERR_TIMEOUT' });
      expect(at - idler.sentAt).toBeGreaterThanOrEqual(LIMITS.setupTimeoutMs - 5);
      expect(at - idler.sentAt).toBeLessThan(LIMITS.setupTimeoutMs + LATE_MS);
      await waitUntil(() => b.availability().incoming <= 1 && b.host.isFree('idler'), { what: 'the idler discarded' });
      const report = await legit;
      expectCompleted(report);
      expect(report.verify.match).toBe(true);
      // The refused Setup did not spend its ticket: with room again, the same ticket is taken.
      const retry = await sendRogueSetup(b.dataAddress!, creds, { name: 'third', memoryBytes: 8 * MiB, ticket });
      expect(((await retry.answer) as Message).type).toBe(MsgType.SetupDone);
      await retry.channel.close();
      await waitUntil(() => b.availability().incoming === 0 && b.host.isFree('third'), { what: 'the retry discarded' });
      expect(b.host.list().map((vm) => `${vm.name}:${vm.state}`)).toEqual(['vm:running']);
      expect(b.availability().guestMemory.reservedBytes).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );
});

function hostPort(daemon: AgentDaemon): { host: string; port: number } {
  const [host, port] = daemon.dataAddress!.split(':') as [string, string];
  return { host, port: Number(port) };
}
