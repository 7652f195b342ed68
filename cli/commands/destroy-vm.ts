/**
 * `livemig destroy-vm`: stop a VM on an agent and free it (virsh `destroy`; the control API's
 * destroy-vm) — or forget the record of one that migrated away. Refused while it migrates
 * (ERR_BUSY: `livemig migrate-cancel` first). Destroying is an admin's (roles.ts).
 */
import type { Command } from 'commander';
import { controlUrlFlag } from '../options.ts';
import { addClientSecurityOptions, connectControl, type SecurityFlags } from '../security-flags.ts';
import { vmNameFlag } from '../vm-flags.ts';

export function registerDestroyVmCommand(program: Command): void {
  const command = program
    .command('destroy-vm')
    .description('Stop a VM on an agent and free its memory (virsh destroy): its state is lost.')
    .option('--control <url>', 'the agent control URL', controlUrlFlag, 'ws://127.0.0.1:7171')
    .requiredOption('--vm <name>', 'the VM to destroy', vmNameFlag);
  addClientSecurityOptions(command).action(async (flags: SecurityFlags & { control: string; vm: string }) => {
    const client = await connectControl(flags.control, flags);
    try {
      await client.request('destroy-vm', { vm: flags.vm });
      process.stdout.write(`destroyed ${flags.vm}\n`);
    } finally {
      client.close();
    }
  });
}
