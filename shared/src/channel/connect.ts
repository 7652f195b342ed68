/**
 * Opening a migration's data connection, both ends. The source connects and says Hello; the
 * destination listens, answers Welcome (or an Error frame naming why not: wrong version, not a
 * livemig peer), and hands each accepted peer — a PeerChannel plus the PageApplier its Pages
 * bytes go to — to the daemon. With `tls` (tls.ts) both ends first prove who they are with
 * certificates of the fleet CA; the channel then reports the peer's verified identity.
 *
 * The destination's listener is a plain TCP server in front of everything: each connection
 * first passes the handshake gate (handshake-gate.ts — a limit on connections in their
 * handshake, refused before TLS; an absolute deadline from accept), then goes to TLS (a
 * tls.Server that never listens itself) or straight to the framed protocol.
 */
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_MAX_UNAUTHENTICATED } from '../admission.ts';
import { MigrationError, toMigrationError } from '../errors.ts';
import { listenError, type HostPort } from '../address.ts';
import {
  acceptWelcome,
  isKnownCapability,
  KNOWN_CAPABILITIES,
  FramedSocket,
  makeHello,
  MsgType,
  negotiate,
  negotiatedEncodings,
  resolveFramedSocketOptions,
  type Capability,
  type FramedSocketOptions,
  type HandshakeConfig,
} from '../protocol/index.ts';
import { FramedPeerChannel } from './framed-peer-channel.ts';
import { HandshakeGate, type PendingConnection } from './handshake-gate.ts';
import { admitSource, connectTls, createTlsServer, identityOf, type DestTls, type SourceTls } from './tls.ts';
import { PageApplier } from './page-applier.ts';
import type { PeerChannel } from './peer-channel.ts';

/** Capabilities this build offers by default: every one it knows (handshake.ts lists them once). */
export const OFFERED_CAPABILITIES: readonly Capability[] = Object.keys(KNOWN_CAPABILITIES) as Capability[];

/**
 * Read buffer of every data connection. libuv reads a busy socket up to 32 times per event-loop
 * turn, so this bounds how much bulk data is copied before the loop looks at the other socket
 * — in post-copy, the fault channel: 32 × 64 KiB ≈ 2 MiB ≈ 1–2 ms, against 8 MiB with 256 KiB
 * buffers. Pre-copy throughput does not depend on it: runs of pages are read in place.
 */
const READ_BUFFER_BYTES = 64 * 1024;

/** How long the destination may take to answer Hello (source side; the destination has its gate). */
const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface ConnectPeerOptions extends HostPort {
  agentId: string;
  logger: Logger;
  /** What to offer in Hello. @default OFFERED_CAPABILITIES */
  capabilities?: readonly Capability[];
  signal?: AbortSignal;
  socket?: FramedSocketOptions;
  /** Mutual TLS, checking the destination's name. @default none: plaintext */
  tls?: SourceTls;
}

/** Source side: connect, Hello → Welcome. Rejects with a MigrationError (ERR_CONNECTION, ERR_PROTOCOL_VERSION, …). */
export async function connectPeer(options: ConnectPeerOptions): Promise<PeerChannel> {
  const socketOptions: FramedSocketOptions = { readBufferBytes: READ_BUFFER_BYTES, ...options.socket, role: 'source' };
  const socket = options.tls
    ? FramedSocket.adopt(await connectTls(options.host, options.port, options.tls, HANDSHAKE_TIMEOUT_MS), socketOptions)
    : await FramedSocket.connect({ ...socketOptions, host: options.host, port: options.port });
  const local: HandshakeConfig = {
    agentId: options.agentId,
    capabilities: options.capabilities ?? OFFERED_CAPABILITIES,
  };
  const started = performance.now();
  const channel = new FramedPeerChannel(socket, { remoteAgentId: `${options.host}:${options.port}`, rttMs: 0 });
  try {
    if (options.tls) channel.authenticated(identityOf(socket.socket as TLSSocket));
    channel.send(makeHello(local));
    const welcome = await withTimeout(channel.expect(MsgType.Welcome, options.signal), 'Welcome');
    const rttMs = performance.now() - started;
    const negotiated = acceptWelcome(local, welcome);
    options.logger.debug({ event: 'handshake.done', ...negotiated, capabilities: [...negotiated.capabilities], rttMs });
    channel.identify(negotiated.remoteAgentId, rttMs, negotiated.capabilities);
    return channel;
  } catch (error) {
    const failure = toMigrationError(error, 'ERR_HANDSHAKE');
    channel.abort(failure);
    throw failure;
  }
}

export interface AcceptedPeer {
  channel: PeerChannel;
  applier: PageApplier;
  remoteAgentId: string;
  /** The connection's remote HOST:PORT. */
  remote: string;
  /**
   * Aborts at the connection's handshake deadline (reason: ERR_TIMEOUT): read the first message
   * with it, so a peer that finished the handshake and then only idles is closed too.
   */
  deadline: AbortSignal;
}

export interface ListenOptions extends HostPort {
  agentId: string;
  logger: Logger;
  /** What to accept of a Hello's offer. @default OFFERED_CAPABILITIES */
  capabilities?: readonly Capability[];
  onPeer: (peer: AcceptedPeer) => void;
  socket?: FramedSocketOptions;
  /** Mutual TLS, admitting only the sources `tls.allowSource` names. @default none: plaintext */
  tls?: DestTls;
  /**
   * Connections at once that have not finished their handshake (TLS, Hello → Welcome); one more
   * is refused before TLS with ERR_TOO_MANY_CONNECTIONS. @default 64
   */
  maxUnauthenticated?: number;
  /**
   * From TCP accept to the handshake done — and, through AcceptedPeer.deadline, to the first
   * message; heartbeats do not extend it. @default 5000
   */
  handshakeTimeoutMs?: number;
}

export interface PeerListener {
  address(): HostPort;
  /** Connections in their handshake now (what maxUnauthenticated bounds). */
  readonly inHandshake: number;
  close(): Promise<void>;
}

/**
 * Destination side: listen; each connection that passes the handshake gate and completes
 * Hello → Welcome (after mutual TLS, with `tls`) becomes an AcceptedPeer.
 */
export function listenForPeers(options: ListenOptions): Promise<PeerListener> {
  const local: HandshakeConfig = {
    agentId: options.agentId,
    capabilities: options.capabilities ?? OFFERED_CAPABILITIES,
  };
  const socketOptions = resolveFramedSocketOptions({
    readBufferBytes: READ_BUFFER_BYTES,
    ...options.socket,
    role: 'dest',
  });
  const gate = new HandshakeGate({
    maxInHandshake: options.maxUnauthenticated ?? DEFAULT_MAX_UNAUTHENTICATED,
    timeoutMs: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    logger: options.logger,
  });
  /** Hello → Welcome over a connection that passed the gate (and TLS, with `tls`), before its deadline. */
  const handshake = (socket: FramedSocket, pending: PendingConnection): void => {
    const applier = new PageApplier();
    socket.setSink(applier);
    const remote = `${socket.socket.remoteAddress ?? '?'}:${socket.socket.remotePort ?? '?'}`;
    const channel = new FramedPeerChannel(socket, { remoteAgentId: remote, rttMs: 0 });
    void (async () => {
      try {
        if (options.tls) {
          const peer = identityOf(socket.socket as TLSSocket);
          const refused = admitSource(peer, options.tls);
          if (refused) throw refused;
          channel.authenticated(peer);
        }
        const hello = await channel.expect(MsgType.Hello, pending.signal);
        const welcome = negotiate(local, hello);
        channel.send(welcome);
        pending.done();
        options.logger.debug({ event: 'handshake.done', peer: hello.agentId, version: welcome.version });
        const capabilities = new Set(welcome.capabilities.filter(isKnownCapability));
        channel.identify(hello.agentId, 0, capabilities);
        applier.encodings = negotiatedEncodings(capabilities);
        options.onPeer({ channel, applier, remoteAgentId: hello.agentId, remote, deadline: pending.signal });
      } catch (error) {
        const failure = toMigrationError(error, 'ERR_HANDSHAKE');
        options.logger.warn({ event: 'handshake.failed', peer: remote, err: failure }, 'rejected a connection');
        channel.abort(failure);
      }
    })();
  };
  const tlsOptions = options.tls;
  const tlsServer = tlsOptions
    ? createTlsServer(tlsOptions, (tlsSocket) => {
        const pending = gate.pendingOf(tlsSocket);
        if (!pending) return void tlsSocket.destroy();
        pending.secured();
        handshake(FramedSocket.adoptResolved(tlsSocket, socketOptions), pending);
      })
    : undefined;
  // Plaintext sockets start paused so their handle can be re-wrapped to read into guest memory;
  // TLS sockets are given `onread` once established instead (see FramedSocket.adopt).
  const server = net.createServer({ pauseOnConnect: !tlsServer }, (raw) => {
    const pending = gate.admit(raw);
    if (!pending) return;
    if (tlsServer) tlsServer.emit('connection', raw);
    else {
      pending.secured();
      handshake(FramedSocket.adoptResolved(raw, socketOptions), pending);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (error) => reject(listenError('the data port', options, error)));
    server.listen(options.port, options.host, () => {
      resolve({
        address: () => {
          const address = server.address();
          if (address === null || typeof address === 'string') throw new MigrationError('ERR_INTERNAL', 'no address');
          return { host: address.address, port: address.port };
        },
        get inHandshake() {
          return gate.inHandshake;
        },
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new MigrationError('ERR_TIMEOUT', `peer sent no ${what} within ${HANDSHAKE_TIMEOUT_MS} ms`)),
      HANDSHAKE_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
