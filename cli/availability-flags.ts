/**
 * The agent's availability flags (issue 13): what any peer, authenticated or not, may cost it —
 * the guest-memory budget, the limits on connections in their handshake and on incoming
 * migrations, and the handshake and setup deadlines. Defaults and checks are admission.ts's.
 */
import { Option, type Command } from 'commander';
import { totalmem } from 'node:os';
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MAX_INCOMING,
  DEFAULT_MAX_UNAUTHENTICATED,
  DEFAULT_SETUP_TIMEOUT_MS,
  defaultGuestMemoryBudget,
  formatBytes,
  type AvailabilityLimits,
} from '@livemig/shared';
import { durationFlag, positiveIntFlag, sizeFlag } from './options.ts';

export interface AvailabilityFlags {
  maxGuestMemory?: number;
  maxIncoming: number;
  maxUnauthenticated: number;
  handshakeTimeout: number;
  setupTimeout: number;
}

/** Add the availability flags to an agent command. */
export function addAvailabilityOptions(command: Command): Command {
  const budget = formatBytes(defaultGuestMemoryBudget(totalmem()));
  const option = (flags: string, description: string, parse: (text: string) => number): Option =>
    new Option(flags, description).argParser(parse);
  return command
    .addOption(
      option(
        '--max-guest-memory <size>',
        'guest memory this agent may hold: hosted VMs plus reservations for incoming ones; an incoming ' +
          'migration (or create-vm) past it is refused at Setup with ERR_NO_MEMORY, before anything is allocated ' +
          `(default: half of physical memory, ${budget} here)`,
        sizeFlag,
      ),
    )
    .addOption(
      option(
        '--max-incoming <n>',
        'incoming migrations at once; one more is refused at Setup with ERR_TOO_MANY_INCOMING',
        positiveIntFlag,
      ).default(DEFAULT_MAX_INCOMING),
    )
    .addOption(
      option(
        '--max-unauthenticated <n>',
        'data connections at once that have not finished their handshake; one more is refused before ' +
          'TLS with ERR_TOO_MANY_CONNECTIONS',
        positiveIntFlag,
      ).default(DEFAULT_MAX_UNAUTHENTICATED),
    )
    .addOption(
      option(
        '--handshake-timeout <duration>',
        "a data connection's deadline from accept to its handshake and first message (Setup or Attach), " +
          'closed past it; heartbeats do not extend it',
        durationFlag,
      ).default(DEFAULT_HANDSHAKE_TIMEOUT_MS),
    )
    .addOption(
      option(
        '--setup-timeout <duration>',
        "an incoming migration's deadline from SetupDone (its VM built here) to its first page; past it the half-built VM is " +
          'discarded (ERR_TIMEOUT); heartbeats do not extend it',
        durationFlag,
      ).default(DEFAULT_SETUP_TIMEOUT_MS),
    );
}

/** The daemon options the availability flags give. */
export function availabilityFromFlags(flags: AvailabilityFlags): Partial<AvailabilityLimits> {
  return {
    ...(flags.maxGuestMemory === undefined ? {} : { maxGuestMemoryBytes: flags.maxGuestMemory }),
    maxIncoming: flags.maxIncoming,
    maxUnauthenticated: flags.maxUnauthenticated,
    handshakeTimeoutMs: flags.handshakeTimeout,
    setupTimeoutMs: flags.setupTimeout,
  };
}
