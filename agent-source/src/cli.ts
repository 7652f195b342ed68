/**
 * `livemig source`: run the source agent. Flags → a checked config → the daemon. With --vm it
 * boots one VM at start; more can be created through the control API (`create-vm`).
 */
import type { Command } from 'commander';
import { createLogger, isLoopback, parseHostPort, runDaemon, type LevelWithSilent } from '@livemig/shared';
import { parseVmSpec } from '@livemig/shared/vm';
import { SourceDaemon } from './daemon.ts';

interface SourceFlags {
  control: string;
  vm?: string;
  memory: string;
  init: string;
  workload: string;
  seed: string;
  logLevel: LevelWithSilent;
}

export function registerSourceCommand(program: Command, parseLogLevel: (text: string) => LevelWithSilent): void {
  program
    .command('source')
    .description('Run the source agent: host VMs and migrate them out on request (control API over ws).')
    .option('--control <host:port>', 'control API address (ws); 127.0.0.1 only by default', '127.0.0.1:7171')
    .option('--vm <name>', 'boot a VM with this name at start (else create VMs through the control API)')
    .option('--memory <size>', 'guest memory of the --vm, e.g. 256MiB, 1GiB (4 KiB pages)', '256MiB')
    .option('--init <spec>', 'initial memory: zero | random | mixed:<fraction of zero pages>', 'random')
    .option(
      '--workload <spec>',
      'what the vCPU runs, e.g. hotset:wss=64MiB,rate=20000 (see `livemig vm --help`)',
      'idle',
    )
    .option('--seed <n>', 'seed of the initial memory and the workload', '1')
    .option('--log-level <level>', 'fatal | error | warn | info | debug | trace | silent', parseLogLevel, 'info')
    .addHelpText(
      'after',
      '\nPrints one line {"event":"ready","control":"ws://…"} on stdout once listening; logs go to stderr.\n' +
        'There is no authentication yet: keep the control port on loopback or a trusted network.',
    )
    .action(async (flags: SourceFlags) => {
      const control = parseHostPort(flags.control, '--control');
      const spec = flags.vm
        ? parseVmSpec({ memory: flags.memory, init: flags.init, workload: flags.workload, seed: Number(flags.seed) })
        : undefined;
      const logger = createLogger({ name: 'agent-source', level: flags.logLevel });
      if (!isLoopback(control.host)) {
        logger.warn(
          { control: flags.control },
          'control API is reachable beyond this machine and has no authentication',
        );
      }
      await runDaemon(logger, async () => {
        const daemon = await SourceDaemon.start({ control, logger });
        if (flags.vm && spec) await daemon.host.create(flags.vm, spec);
        return {
          ready: { role: 'source', control: daemon.controlUrl, agentId: daemon.agentId },
          stop: (r) => daemon.stop(r),
        };
      });
    });
}
