/**
 * Where an agent without a PKI may listen. Plaintext has no authentication and no encryption, so
 * it is allowed on loopback (only this machine's processes can connect), and beyond it only when
 * the operator says `--insecure` — the same line QEMU draws between a unix socket and `tls-creds`.
 * Pure: the daemon asks before binding, then warns as the answer says.
 */
import { formatHostPort, isLoopback, MigrationError, type HostPort } from '@livemig/shared';

export interface PlaintextVerdict {
  /** The addresses beyond loopback, as "what HOST:PORT" (empty: loopback only). */
  exposed: string[];
}

/**
 * Check the ports a plaintext agent would bind. Throws ERR_INSECURE when one is reachable beyond
 * this machine and `insecure` was not given.
 */
export function checkPlaintext(ports: Record<string, HostPort | undefined>, insecure: boolean): PlaintextVerdict {
  const exposed = Object.entries(ports)
    .filter((entry): entry is [string, HostPort] => entry[1] !== undefined && !isLoopback(entry[1].host))
    .map(([what, address]) => `${what} ${formatHostPort(address)}`);
  if (exposed.length > 0 && !insecure) {
    throw new MigrationError(
      'ERR_INSECURE',
      `refusing plaintext beyond loopback (${exposed.join(', ')}): anyone who reaches it could take or plant VMs. ` +
        'Give --pki DIR --name NAME for mutual TLS, or --insecure if this network is trusted',
    );
  }
  return { exposed };
}
