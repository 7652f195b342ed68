/** `livemig dest`: run the destination agent. Flags → a checked config → the daemon. */
import type { Command } from 'commander';
import { createLogger, parseHostPort, runDaemon } from '@livemig/shared';
import { DestDaemon } from '@livemig/agent-dest';
import {
  addLogLevelOption,
  addressMoverFromFlags,
  addVmLinkOption,
  warnIfExposed,
  type LogLevelFlags,
  type VmLinkFlags,
} from '../agent-options.ts';

interface DestFlags extends LogLevelFlags, VmLinkFlags {
  listen: string;
  control: string;
}

export function registerDestCommand(program: Command): void {
  const command = program
    .command('dest')
    .description('Run the destination agent: accept migrations on the data port and keep running the VMs received.')
    .option('--listen <host:port>', 'data port migrations arrive on; 127.0.0.1 only by default', '127.0.0.1:7070')
    .option('--control <host:port>', 'control API address (ws); 127.0.0.1 only by default', '127.0.0.1:7071');
  addVmLinkOption(command);
  addLogLevelOption(command)
    .addHelpText(
      'after',
      '\nPrints one line {"event":"ready","listen":"…","control":"ws://…"} on stdout once listening.\n' +
        'There is no authentication yet: keep both ports on loopback or a trusted network.',
    )
    .action(async (flags: DestFlags) => {
      const listen = parseHostPort(flags.listen, '--listen');
      const control = parseHostPort(flags.control, '--control');
      const logger = createLogger({ name: 'agent-dest', level: flags.logLevel });
      warnIfExposed(logger, { listen, control });
      await runDaemon(logger, async () => {
        const daemon = await DestDaemon.start({
          listen,
          control,
          logger,
          addressMover: addressMoverFromFlags(flags, logger),
        });
        return {
          ready: { role: 'dest', listen: daemon.dataAddress, control: daemon.controlUrl, agentId: daemon.agentId },
          stop: (r) => daemon.stop(r),
        };
      });
    });
}
