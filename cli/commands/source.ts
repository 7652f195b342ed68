/**
 * `livemig source`: run the source agent. Flags → a checked config → the daemon. With --vm it
 * boots one VM at start; more can be created through the control API (`create-vm`).
 */
import type { Command } from 'commander';
import { createLogger, parseHostPort, runDaemon } from '@livemig/shared';
import { SourceDaemon } from '@livemig/agent-source';
import {
  addLogLevelOption,
  addressMoverFromFlags,
  addVmLinkOption,
  warnIfExposed,
  type LogLevelFlags,
  type VmLinkFlags,
} from '../agent-options.ts';
import { addVmSpecOptions, specFromFlags, type VmFlags } from '../vm-flags.ts';

interface SourceFlags extends VmFlags, LogLevelFlags, VmLinkFlags {
  control: string;
  vm?: string;
}

export function registerSourceCommand(program: Command): void {
  const command = program
    .command('source')
    .description('Run the source agent: host VMs and migrate them out on request (control API over ws).')
    .option('--control <host:port>', 'control API address (ws); 127.0.0.1 only by default', '127.0.0.1:7171')
    .option('--vm <name>', 'boot a VM with this name at start (else create VMs through the control API)');
  addVmSpecOptions(command, { memory: '256MiB', init: 'random', workload: 'idle' });
  addVmLinkOption(command);
  addLogLevelOption(command)
    .addHelpText(
      'after',
      '\nThe --memory, --init, --workload and --seed flags describe the --vm (see `livemig vm --help`).\n' +
        'Prints one line {"event":"ready","control":"ws://…"} on stdout once listening; logs go to stderr.\n' +
        'There is no authentication yet: keep the control port on loopback or a trusted network.',
    )
    .action(async (flags: SourceFlags) => {
      const control = parseHostPort(flags.control, '--control');
      const spec = flags.vm ? specFromFlags(flags) : undefined;
      const logger = createLogger({ name: 'agent-source', level: flags.logLevel });
      warnIfExposed(logger, { control });
      await runDaemon(logger, async () => {
        const daemon = await SourceDaemon.start({
          control,
          logger,
          addressMover: addressMoverFromFlags(flags, logger),
        });
        if (flags.vm && spec) await daemon.host.create(flags.vm, spec);
        return {
          ready: { role: 'source', control: daemon.controlUrl, agentId: daemon.agentId },
          stop: (r) => daemon.stop(r),
        };
      });
    });
}
