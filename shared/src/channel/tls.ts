/**
 * Mutual TLS for data connections (issue 12's data plane, not yet wired into the agent): TLS 1.3
 * only, both ends present a certificate of the fleet CA, and each end checks the other's
 * identity before any livemig frame is read —
 *
 *   source       the destination's certificate must carry the name it expects (`expectName`,
 *                checked against the SAN like any TLS client checks a host name)
 *   destination  the source's certificate must carry role `agent` and a name `allowSource`
 *                accepts (default deny: no function, nobody); anything else is refused with an
 *                Error frame (ERR_FORBIDDEN) before a byte of guest memory moves
 *
 * The identity read off the verified certificate is what the channel reports as its peer.
 * FramedSocket.adopt gives each established TLS socket the `onread` option (socket-handle.ts): the
 * TLS handle decrypts each record once, straight into the receive path's reused buffer or into
 * guest memory, as a plaintext socket's kernel reads do — no 'data' events, no chunk per record.
 */
import { isIP } from 'node:net';
import tls from 'node:tls';
import { MigrationError } from '../errors.ts';
import { roleOf, type Role } from '../security/index.ts';

/** This agent's credentials: the fleet CA, its certificate and key (PEM), as loadPki() gives them. */
export interface TlsCredentials {
  ca: string;
  cert: string;
  key: string;
}

export interface SourceTls extends TlsCredentials {
  /** The name the destination's certificate must carry. */
  expectName: string;
}

export interface DestTls extends TlsCredentials {
  /** Which source certificate names may migrate VMs here. */
  allowSource: (name: string) => boolean;
}

/** Who is on the other end, from its verified certificate. */
export interface PeerIdentity {
  name: string;
  role: Role;
  /** SHA-256 of the peer's certificate, colon-separated upper-case hex (as Identity.fingerprint). */
  fingerprint: string;
  /** The negotiated protocol and cipher, for the report. */
  protocol: string;
  cipher: string;
}

const BASE: tls.SecureContextOptions & tls.CommonConnectionOptions = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' };

/** The verified identity of the peer of an established TLS socket; ERR_UNAUTHENTICATED when there is none. */
export function identityOf(socket: tls.TLSSocket): PeerIdentity {
  if (!socket.authorized) {
    throw new MigrationError(
      'ERR_UNAUTHENTICATED',
      `peer certificate not accepted: ${String(socket.authorizationError)}`,
    );
  }
  const cert = socket.getPeerCertificate();
  const cn = cert.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  if (!name) throw new MigrationError('ERR_UNAUTHENTICATED', 'peer certificate has no name');
  return {
    name,
    role: roleOf(cert),
    fingerprint: cert.fingerprint256,
    protocol: socket.getProtocol() ?? 'unknown',
    cipher: socket.getCipher().name,
  };
}

/** Source side: a TLS connection to the destination, which must prove it is `expectName`. */
export function connectTls(host: string, port: number, options: SourceTls, timeoutMs: number): Promise<tls.TLSSocket> {
  const { ca, cert, key, expectName } = options;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      ...BASE,
      host,
      port,
      ca,
      cert,
      key,
      rejectUnauthorized: true,
      ...(isIP(expectName) ? {} : { servername: expectName }),
      checkServerIdentity: (_host, peer) => tls.checkServerIdentity(expectName, peer),
    });
    const timer = setTimeout(
      () => fail(new MigrationError('ERR_TIMEOUT', `TLS handshake with ${host}:${port} timed out`)),
      timeoutMs,
    );
    function fail(error: Error): void {
      clearTimeout(timer);
      socket.destroy();
      reject(error instanceof MigrationError ? error : tlsFailure(error, `${host}:${port}`, expectName));
    }
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      try {
        const peer = identityOf(socket);
        if (peer.role !== 'agent')
          throw new MigrationError('ERR_FORBIDDEN', `"${peer.name}" is a ${peer.role}, not an agent`);
        resolve(socket);
      } catch (error) {
        fail(error as Error);
      }
    });
  });
}

/**
 * Why a TLS connection failed, as a MigrationError. Bytes that are no TLS record ("wrong version
 * number") mean the destination answered in plaintext: a livemig destination does that when it
 * refuses a connection before TLS (at its limit of connections in their handshake), or when it
 * runs without --pki. Anything else is a failed authentication.
 */
function tlsFailure(error: Error, address: string, expectName: string): MigrationError {
  if ((error as NodeJS.ErrnoException).code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    return new MigrationError(
      'ERR_CONNECTION',
      `${address} answered in plaintext, not TLS: it refused the connection before TLS (e.g. ERR_TOO_MANY_CONNECTIONS, ` +
        'too many connections in their handshake) or runs without --pki',
      { cause: error },
    );
  }
  return new MigrationError(
    'ERR_UNAUTHENTICATED',
    `TLS with ${address} (expecting "${expectName}"): ${error.message}`,
    {
      cause: error,
    },
  );
}

/**
 * Destination side: a TLS server requiring client certificates of the fleet CA. `onSecure` gets
 * each connection once its handshake verified; `check` says whether that peer may migrate here.
 */
export function createTlsServer(options: DestTls, onSecure: (socket: tls.TLSSocket) => void): tls.Server {
  const { ca, cert, key } = options;
  return tls.createServer({ ...BASE, ca, cert, key, requestCert: true, rejectUnauthorized: true }, onSecure);
}

/** Whether a verified source may migrate VMs here: role `agent` and a name the allowlist accepts. */
export function admitSource(peer: PeerIdentity, options: DestTls): MigrationError | undefined {
  if (peer.role !== 'agent')
    return new MigrationError('ERR_FORBIDDEN', `"${peer.name}" is a ${peer.role}, not an agent`);
  if (!options.allowSource(peer.name)) {
    return new MigrationError(
      'ERR_FORBIDDEN',
      `source "${peer.name}" is not allowed to migrate VMs here (--allow-source)`,
    );
  }
  return undefined;
}
