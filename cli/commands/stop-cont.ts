/**
 * `livemig stop` / `livemig cont`: pause and resume a VM on an agent (QMP's stop/cont). `cont
 * --force` is the admin's way back for a VM left paused as "migrated" when a handoff's
 * confirmation was lost: the agent asks the destination first and refuses
 * (ERR_VM_RUNS_ELSEWHERE) while it holds the VM; only a destination that cannot be asked leaves
 * it to the admin's word (agent/src/forced-cont.ts).
 */
import type { Command } from 'commander';
import { controlUrlFlag } from '../options.ts';
import { addClientSecurityOptions, connectControl, type SecurityFlags } from '../security-flags.ts';

export function registerStopContCommands(program: Command): void {
  const stop = program
    .command('stop')
    .description('Pause a VM on an agent.')
    .option('--control <url>', 'the agent control URL', controlUrlFlag, 'ws://127.0.0.1:7171')
    .requiredOption('--vm <name>', 'the VM to pause');
  addClientSecurityOptions(stop).action(async (flags: SecurityFlags & { control: string; vm: string }) => {
    const client = await connectControl(flags.control, flags);
    try {
      const info = await client.request('stop', { vm: flags.vm });
      process.stdout.write(`${info.name}: ${info.state} at step ${info.steps}\n`);
    } finally {
      client.close();
    }
  });
  const cont = program
    .command('cont')
    .description('Resume a paused VM on an agent.')
    .option('--control <url>', 'the agent control URL', controlUrlFlag, 'ws://127.0.0.1:7171')
    .requiredOption('--vm <name>', 'the VM to resume')
    .option(
      '--force',
      'resume a VM left "migrated" by an unconfirmed handoff (admin): refused while its destination says it holds the VM',
    );
  addClientSecurityOptions(cont).action(
    async (flags: SecurityFlags & { control: string; vm: string; force?: boolean }) => {
      const client = await connectControl(flags.control, flags);
      try {
        const info = await client.request('cont', { vm: flags.vm, force: flags.force === true });
        process.stdout.write(`${info.name}: ${info.state} at step ${info.steps}\n`);
      } finally {
        client.close();
      }
    },
  );
}
