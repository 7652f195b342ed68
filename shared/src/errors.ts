/**
 * One error class for everything livemig rejects or fails at, matched on its stable `code`
 * (never on `instanceof` or the message text). Every code is listed, with its meaning, in
 * ERROR_CODES below; docs/errors.md is generated from the same table by a test, so the two
 * cannot drift.
 */

/** Stable error codes and what each means. Add new codes here, nowhere else. */
export const ERROR_CODES = {
  // Input and configuration
  ERR_INVALID_ARGUMENT: 'A flag, option or parameter has a bad value (message says which and why).',
  ERR_INVALID_SIZE: 'A size could not be parsed or is outside the allowed range (e.g. "12XB", "0").',
  ERR_INVALID_DURATION: 'A duration could not be parsed (e.g. "10 parsecs").',
  ERR_INVALID_RATE: 'A bandwidth or rate could not be parsed (e.g. "fast").',
  ERR_INVALID_WORKLOAD: 'A workload spec names an unknown workload or has a bad parameter.',
  ERR_INVALID_INIT: 'An --init spec is not zero | random | mixed:<fraction in [0,1]>.',
  // Identities (the fleet PKI)
  ERR_PKI:
    'The PKI directory is not as the operation needs: a CA or certificate already exists (never overwritten), a file is missing, or a private key is readable by group or others.',
  ERR_CERTIFICATE:
    'A certificate is not one this fleet trusts or can use: not signed by its CA, expired or not yet valid, its key does not match, or it carries no valid livemig role.',
  // Toy VM
  ERR_VM_STATE: 'The VM is not in a state that allows the operation (e.g. resume while running).',
  ERR_VCPU_CRASHED: 'The vCPU worker thread exited or threw unexpectedly.',
  ERR_FAULT_THREAD:
    "A post-copy fault thread (the destination's fault thread or the source's fault worker: the worker that owns its end of the fault channel) could not start, or exited or threw; its faults go back to the main thread.",
  ERR_DEVICE_FAILED:
    'A device of the VM (its disk) failed other than with an I/O error the guest is told of; the VM was halted as crashed rather than left waiting on a device that no longer answers.',
  ERR_STATE_MISMATCH: 'Imported CPU or device state does not fit this VM (size, workload, version).',
  ERR_BLOCK_OUT_OF_RANGE:
    'A disk block number or block count is outside the disk image (or a request asks for more blocks than allowed at once).',
  ERR_DISK_IMAGE:
    'A disk image could not be created, opened, read, written or flushed: the file exists already, is not a whole number of blocks, or the file system failed (the message names the file and why).',
  // Wire protocol
  ERR_BAD_MAGIC: 'A frame did not start with the livemig magic number: the peer is not a livemig agent.',
  ERR_PROTOCOL_VERSION: 'The peer speaks a protocol version this agent does not support.',
  ERR_UNKNOWN_MESSAGE: 'A frame carried a message type this agent does not know.',
  ERR_FRAME_TOO_LARGE: 'A frame declared a length over the configured maximum frame size.',
  ERR_BAD_METADATA: 'Frame metadata is not valid msgpack or does not match the message schema.',
  ERR_BAD_PAYLOAD: 'A frame payload length does not match what its metadata describes.',
  ERR_TRUNCATED: 'The stream ended in the middle of a frame.',
  ERR_UNEXPECTED_MESSAGE: 'A valid message arrived in a state or direction where it is not allowed.',
  ERR_PAGE_OUT_OF_RANGE: 'A page number from the peer is outside the VM.',
  ERR_BUFFER_OVERFLOW: 'A read or write buffer grew past its hard cap.',
  ERR_IDLE_TIMEOUT: 'The peer sent nothing (not even a heartbeat) for longer than the idle timeout.',
  ERR_HANDSHAKE: 'The handshake failed (incompatible page size, capabilities or VM spec).',
  ERR_BAD_ENCODING:
    'An encoded page from the peer is malformed: an XBZRLE delta that runs past the page end, is truncated, has an overlong length or an empty run in the middle, or a compressed batch that does not decompress to exactly its declared length (or declares too much). Nothing was written to the page; the migration fails and the source keeps the VM.',
  // Migration
  ERR_BAD_TRANSITION: 'A migration state machine was asked for a transition its table does not allow.',
  ERR_CONNECTION: 'A connection failed or closed before the migration finished.',
  ERR_PEER_ABORTED: 'The peer aborted the migration and said why (see the message).',
  ERR_DIGEST_MISMATCH:
    "A digest the destination computed (memory, CPU or device state) differs from the source's: the VM is not run damaged.",
  ERR_UNSUPPORTED: 'The peer did not negotiate a capability the operation needs (e.g. post-copy); nothing was moved.',
  ERR_CANCELLED: 'The migration was cancelled by the operator.',
  ERR_TIMEOUT: 'An operation did not finish within its time limit.',
  ERR_SWITCHOVER_TIMEOUT:
    "The destination did not answer Ready within the switchover timeout (--switchover-timeout) after the VM paused for stop-and-copy: the source, still the VM's owner, resumed it and failed the migration; the destination discards its copy.",
  ERR_VM_RUNS_ELSEWHERE:
    '`cont --force` was refused: the destination of the unconfirmed handoff answered that it holds the VM (runs it, or may still), so resuming it here would make two copies.',
  ERR_NOT_FOUND: 'A named VM or migration does not exist on this agent.',
  ERR_BUSY: 'The VM is already migrating, or the name is already taken.',
  ERR_CONTROL: 'A control-channel request was malformed or failed.',
  ERR_ADDRESS: "The VM's network address could not be set up, taken or given up on this host (message says why).",
  // An agent's own ports (control, data)
  ERR_ADDRESS_IN_USE:
    'An agent could not bind one of its ports (control or data): another process already listens there (EADDRINUSE). The agent does not start; stop the other process or pick another port (port 0 lets the agent choose).',
  ERR_ADDRESS_NOT_AVAILABLE:
    'An agent could not bind one of its ports (control or data) for another reason than a busy port: the address is not assigned to this host (EADDRNOTAVAIL), its name does not resolve, or binding it is not permitted (EACCES); the message says which. The agent does not start.',
  // Security: who may drive an agent, and migration tickets
  ERR_UNAUTHENTICATED: 'No valid client certificate: the connection did not prove who it is.',
  ERR_FORBIDDEN: "The certificate's role does not allow this command (e.g. a viewer asked to migrate).",
  ERR_RATE_LIMITED:
    'A control client sent requests faster than its rate limit (--control-rate, --control-burst); this request was refused, the connection stays up: retry later.',
  ERR_TOO_MANY_CLIENTS:
    'The agent already serves its most control clients at once (--max-control-clients); the connection was refused (HTTP 503): retry later.',
  ERR_PREREQUISITE:
    'This host lacks a tool, a kernel feature or a privilege the command needs (e.g. `tc`, nftables, root for network namespaces); the message names every one missing and the packages to install. Nothing was changed.',
  ERR_INSECURE:
    'An agent was asked to speak plaintext on an address beyond loopback: give it --pki DIR --name NAME (mutual TLS), or --insecure to do so on purpose.',
  ERR_TICKET_UNKNOWN: 'A migration ticket was never issued by this agent, or was already swept away.',
  ERR_TICKET_EXPIRED: 'A migration ticket was presented after its time to live ran out.',
  ERR_TICKET_USED: 'A migration ticket was presented again after it had been consumed (a replay).',
  ERR_TICKET_MISMATCH: 'A migration ticket was presented for another VM or by another source than it was issued for.',
  ERR_TICKET_LIMIT: 'Too many migration tickets are outstanding; no new one is issued until some are used or expire.',
  ERR_AUDIT:
    "The agent's audit log cannot be opened or written (another agent holds it, its last line is damaged, a write or fsync failed): state-changing commands are refused until it can.",
  // Availability: what any peer, authenticated or not, may cost an agent
  ERR_NO_MEMORY:
    "An incoming migration (or a new VM) would take this agent's guest memory past its budget (--max-guest-memory: hosted VMs plus reservations for incoming ones); refused before anything is allocated.",
  ERR_TOO_MANY_CONNECTIONS:
    'Too many data connections are still in their handshake (--max-unauthenticated); this one was refused before its TLS handshake, in plaintext.',
  ERR_TOO_MANY_INCOMING:
    'This agent already runs its limit of concurrent incoming migrations (--max-incoming); refused at Setup.',
  ERR_INTERNAL: 'A bug: an invariant was broken. Please report it with the log.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The error livemig throws. `code` is stable; `message` is for people. */
export class MigrationError extends Error {
  override readonly name = 'MigrationError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** A plain object for JSON reports and the wire (`{ code, message }`). */
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** True when `value` is a MigrationError (by shape, so it also holds across realms/workers). */
export function isMigrationError(value: unknown): value is MigrationError {
  if (!(value instanceof Error)) return false;
  const code: unknown = (value as Error & { code?: unknown }).code;
  return typeof code === 'string' && code in ERROR_CODES;
}

/** Wrap anything thrown into a MigrationError, keeping an existing one as it is. */
export function toMigrationError(value: unknown, fallback: ErrorCode = 'ERR_INTERNAL'): MigrationError {
  if (value instanceof MigrationError) return value;
  if (isMigrationError(value)) return new MigrationError(value.code, value.message, { cause: value });
  const message = value instanceof Error ? value.message : String(value);
  return new MigrationError(fallback, message, { cause: value });
}
