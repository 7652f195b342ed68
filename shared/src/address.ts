/** "HOST:PORT" parsing for --listen, --control and --to; IPv6 as "[::1]:7070". */
import { MigrationError } from './errors.ts';

export interface HostPort {
  host: string;
  port: number;
}

/** Parse "HOST:PORT" (port 0 = pick a free one when listening). */
export function parseHostPort(text: string, what = 'address'): HostPort {
  const match = /^(?:\[([^\]\s]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text.trim().replace(/^wss?:\/\//, ''));
  const port = match ? Number(match[3]) : Number.NaN;
  if (!match || port > 65535) {
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `bad ${what} "${text}": expected HOST:PORT, e.g. 127.0.0.1:7070 or [::1]:7070 (port 0–65535)`,
    );
  }
  return { host: (match[1] ?? match[2])!, port };
}

/** "HOST:PORT", bracketing IPv6 hosts. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * Why `what` (e.g. "the control API") could not listen on `address`, as a coded error: the port is
 * taken (ERR_ADDRESS_IN_USE), or the address cannot be bound here at all (ERR_ADDRESS_NOT_AVAILABLE:
 * not on this host, a name that does not resolve, a privileged port).
 */
export function listenError(what: string, address: HostPort, error: unknown): MigrationError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = formatHostPort(address);
  const why = error instanceof Error ? error.message : String(error);
  if (code === 'EADDRINUSE') {
    return new MigrationError(
      'ERR_ADDRESS_IN_USE',
      `${what} cannot listen on ${where}: another process already listens there (${why})`,
      { cause: error },
    );
  }
  const hint = code === 'EADDRNOTAVAIL' ? ': that address is not assigned to this host' : '';
  return new MigrationError('ERR_ADDRESS_NOT_AVAILABLE', `${what} cannot listen on ${where}${hint} (${why})`, {
    cause: error,
  });
}
