/**
 * What any peer, authenticated or not, may cost an agent (issue 13, availability): the limits,
 * their defaults, and the decisions on them — pure functions, no I/O, no clock. The places that
 * hold the state call them at the moment a cost would be taken:
 *
 *   cost                                    limit                         checked by
 *   a data connection still in handshake    maxUnauthenticated (64)       listenForPeers, at accept,
 *     (TCP accepted → Hello/Welcome done)   handshakeTimeoutMs (5 s)        before TLS
 *   an incoming migration                   maxIncoming (4)               IncomingMigrations, at Setup
 *   its guest memory                        maxGuestMemoryBytes           VmHost, at Setup (and
 *     (hosted VMs + reservations, each        (half of physical memory)     create-vm), before allocating
 *     VM + VM_OVERHEAD_BYTES)
 *   SetupDone → first page                  setupTimeoutMs (10 s)         IncomingMigration
 *
 * Deadlines are absolute: a heartbeat is traffic, not progress, so it extends none of them
 * (the idle timeout is another matter — it only says that the link is alive).
 */
import { MigrationError, type ErrorCode } from './errors.ts';
import { formatBytes } from './units.ts';

/** The availability limits of one agent. */
export interface AvailabilityLimits {
  /** Guest memory this agent may hold: hosted VMs plus reservations for incoming ones. */
  maxGuestMemoryBytes: number;
  /** Concurrent incoming migrations (Setup to end). */
  maxIncoming: number;
  /** Data connections in flight that have not finished their handshake. */
  maxUnauthenticated: number;
  /** From TCP accept to a finished handshake and the connection's first message (Setup or Attach). */
  handshakeTimeoutMs: number;
  /** From SetupDone (the VM is built here) to the first page, or any message after Setup. */
  setupTimeoutMs: number;
}

export const DEFAULT_MAX_INCOMING = 4;
export const DEFAULT_MAX_UNAUTHENTICATED = 64;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000;
export const DEFAULT_SETUP_TIMEOUT_MS = 10_000;

/**
 * What a VM costs an agent besides its guest memory, charged against the budget with it: the
 * isolate of its vCPU worker thread, ~30 MiB measured (Node 20; a prefault worker adds ~5 MiB
 * while it runs). Without it a flood of the smallest VMs (1 MiB) would cost ~30 MiB each and be
 * charged 1 MiB.
 */
export const VM_OVERHEAD_BYTES = 32 * 1024 * 1024;

/** What one VM of `memoryBytes` is charged against the guest-memory budget. */
export function vmCharge(memoryBytes: number): number {
  return memoryBytes + VM_OVERHEAD_BYTES;
}

/** The default guest-memory budget: half of `physicalBytes` (os.totalmem()), whole 4 KiB pages. */
export function defaultGuestMemoryBudget(physicalBytes: number): number {
  return Math.floor(physicalBytes / 2 / 4096) * 4096;
}

/**
 * The limits, defaults filled in and each checked (ERR_INVALID_ARGUMENT naming the option): a
 * budget of 0 or a limit of 0 would refuse everything, which is never what was meant.
 */
export function resolveAvailabilityLimits(
  given: Partial<AvailabilityLimits>,
  physicalBytes: number,
): Readonly<AvailabilityLimits> {
  const limits: AvailabilityLimits = {
    maxGuestMemoryBytes: given.maxGuestMemoryBytes ?? defaultGuestMemoryBudget(physicalBytes),
    maxIncoming: given.maxIncoming ?? DEFAULT_MAX_INCOMING,
    maxUnauthenticated: given.maxUnauthenticated ?? DEFAULT_MAX_UNAUTHENTICATED,
    handshakeTimeoutMs: given.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    setupTimeoutMs: given.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_MS,
  };
  for (const [name, value] of Object.entries(limits)) {
    const whole = name === 'maxIncoming' || name === 'maxUnauthenticated';
    if (!(Number.isFinite(value) && value > 0 && (!whole || Number.isSafeInteger(value)))) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `${name} must be a ${whole ? 'whole number ≥ 1' : 'finite number > 0'}, got ${String(value)}`,
      );
    }
  }
  return Object.freeze(limits);
}

/** Where an agent's guest-memory budget stands; every VM is charged vmCharge() of its memory. */
export interface GuestMemoryLedger {
  budgetBytes: number;
  /** Charged for the VMs hosted here (running, paused, incoming, migrating out). */
  hostedBytes: number;
  /** Charged for VMs about to be built (an admitted Setup, a create-vm): checked, not yet allocated. */
  reservedBytes: number;
}

/**
 * Why one more VM of `memoryBytes` may not be taken on (ERR_NO_MEMORY), or undefined when its
 * charge fits. `what` names it in the message.
 */
export function refuseGuestMemory(
  ledger: GuestMemoryLedger,
  memoryBytes: number,
  what: string,
): MigrationError | undefined {
  const inUse = ledger.hostedBytes + ledger.reservedBytes;
  if (inUse + vmCharge(memoryBytes) <= ledger.budgetBytes) return undefined;
  return new MigrationError(
    'ERR_NO_MEMORY',
    `${what} needs ${formatBytes(memoryBytes)} of guest memory (+${formatBytes(VM_OVERHEAD_BYTES)} per VM); ` +
      `${formatBytes(inUse)} of this agent's ${formatBytes(ledger.budgetBytes)} are taken (--max-guest-memory)`,
  );
}

/**
 * Why one more of something counted (`inFlight` now) may not start: `code`, or undefined while
 * under `limit`. `what` names the things counted, `flag` the option that sets the limit.
 */
export function refuseOverLimit(
  inFlight: number,
  limit: number,
  code: ErrorCode,
  what: string,
  flag: string,
): MigrationError | undefined {
  if (inFlight < limit) return undefined;
  return new MigrationError(code, `${inFlight} ${what} already, the limit is ${limit} (${flag})`);
}
