/**
 * What the agent commands (`livemig agent`, and `source` and `dest`) share: the log-level flag,
 * and how VMs get their network address (--vm-link).
 */
import type { Command } from 'commander';
import type { LevelWithSilent, Logger } from '@livemig/shared';
import type { VmHostOptions } from '@livemig/shared/host';
import { MacvlanAddress } from '@livemig/shared/net';
import { logLevelFlag } from './options.ts';

export interface LogLevelFlags {
  logLevel: LevelWithSilent;
}

export interface VmLinkFlags {
  vmLink?: string;
}

/** Add --vm-link: give VMs with a NIC their own MAC and IP on a macvlan over this interface. */
export function addVmLinkOption(command: Command): Command {
  return command.option(
    '--vm-link <iface>',
    'give each VM with a NIC its own MAC and IP on a macvlan over this interface (needs NET_ADMIN); the address ' +
      "follows the VM, announced by gratuitous ARP. Default: bind the VM's ip:port on this host (one machine, loopback)",
  );
}

/** The address mover --vm-link asks for (undefined: the loopback default). */
export function addressMoverFromFlags(flags: VmLinkFlags, logger: Logger): VmHostOptions['addressMover'] {
  const parent = flags.vmLink;
  if (parent === undefined) return undefined;
  return (address) => new MacvlanAddress({ address, parent, logger });
}

/** Add --log-level (default info). */
export function addLogLevelOption(command: Command): Command {
  return command.option(
    '--log-level <level>',
    'fatal | error | warn | info | debug | trace | silent',
    logLevelFlag,
    'info',
  );
}
