/**
 * `livemig prepare-incoming`: on the destination, issue the single-use ticket a secure agent
 * requires before it takes a VM (libvirt's Prepare before Perform): bound to the VM's name and
 * the source's certificate name, valid for a minute by default. Give it to `livemig migrate
 * --ticket` on the source.
 */
import type { Command } from 'commander';
import { controlUrlFlag, durationFlag } from '../options.ts';
import { addClientSecurityOptions, connectControl, type SecurityFlags } from '../security-flags.ts';

interface PrepareFlags extends SecurityFlags {
  control: string;
  vm: string;
  from: string;
  ttl?: number;
  json?: boolean;
}

export function registerPrepareIncomingCommand(program: Command): void {
  const command = program
    .command('prepare-incoming')
    .description("Issue a destination's single-use ticket for one VM from one source (then: livemig migrate --ticket).")
    .requiredOption('--control <url>', "the destination agent's control URL (wss://…)", controlUrlFlag)
    .requiredOption('--vm <name>', 'the VM that will arrive')
    .requiredOption('--from <name>', "the source agent's certificate name")
    .option('--ttl <duration>', 'how long the ticket is valid (default 60s)', durationFlag)
    .option('--json', 'print {"ticket","vm","from","expiresAt"} as one JSON object');
  addClientSecurityOptions(command).action(async (flags: PrepareFlags) => {
    const client = await connectControl(flags.control, flags);
    try {
      const issued = await client.request('prepare-incoming', {
        vm: flags.vm,
        from: flags.from,
        ...(flags.ttl === undefined ? {} : { ttlMs: flags.ttl }),
      });
      process.stdout.write(flags.json ? JSON.stringify(issued) + '\n' : issued.ticket + '\n');
    } finally {
      client.close();
    }
  });
}
