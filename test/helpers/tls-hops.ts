/**
 * TLS hops for tests that need to see — and cut at — the frames of a *secure* migration. A test
 * owns its fleet's CA, so it can stand in the middle with the endpoints' own credentials:
 *
 *   source ══TLS══► unwrap (as the destination) ──plain──► a frame relay ──plain──► wrap (as the
 *   source) ══TLS══► destination
 *
 * `unwrap` ends the source's mutual TLS with the destination's certificate (the source checks
 * that name and gets it); `wrap` opens mutual TLS to the destination with the source's
 * certificate (the destination's allowlist and Attach/Query identity checks see the source).
 * Between them the bytes are plaintext on loopback inside the test process — where a frame relay
 * (cutting-relay.ts) decodes them. Each accepted connection gets its own way on; either end
 * closing or failing destroys the other.
 */
import net from 'node:net';
import tls from 'node:tls';
import { listenOnLoopback, type FrameRelay } from './frame-relay.ts';

/** A fleet identity's PEMs, as loadPki() gives them. */
export interface HopCredentials {
  ca: string;
  cert: string;
  key: string;
}

/** A listening hop: "127.0.0.1:PORT" to connect to, and how to close it. */
export type Hop = FrameRelay;

const TLS13 = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

/** Accept mutual TLS as `as` (the destination's credentials) and carry the plaintext on to `target`. */
export function startTlsUnwrap(as: HopCredentials, target: { host: string; port: number }): Promise<Hop> {
  const server = tls.createServer({ ...TLS13, ...as, requestCert: true, rejectUnauthorized: true }, (secure) =>
    join(secure, net.connect(target)),
  );
  return listen(server);
}

/** Accept plaintext and carry it on to `target` over mutual TLS as `as` (the source's credentials). */
export function startTlsWrap(as: HopCredentials, target: { host: string; port: number }): Promise<Hop> {
  // The destination's name is the test's own business here: it already checked it at `unwrap`.
  const server = net.createServer((plain) =>
    join(plain, tls.connect({ ...TLS13, ...as, ...target, rejectUnauthorized: false })),
  );
  return listen(server);
}

/** Pipe both ways; either side ending, failing or closing destroys the other. */
function join(a: net.Socket, b: net.Socket): void {
  a.pipe(b);
  b.pipe(a);
  for (const [one, other] of [
    [a, b],
    [b, a],
  ] as const) {
    one.on('error', () => other.destroy());
    one.on('close', () => other.destroy());
  }
}

/** Listen on loopback, every accepted socket destroyed by `close()`. */
function listen(server: net.Server): Promise<Hop> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return listenOnLoopback(server, sockets);
}
