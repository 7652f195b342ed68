/**
 * `livemig status`: the VMs an agent hosts and its migration — the one query-migrate returns: an
 * outgoing one in progress, else an incoming one in progress, else the newest that ended.
 */
import type { Command } from 'commander';
import { formatBytes } from '@livemig/shared';
import { describeMigration } from '../live-figures.ts';
import { controlUrlFlag } from '../options.ts';
import { addClientSecurityOptions, connectControl, type SecurityFlags } from '../security-flags.ts';

export function registerStatusCommand(program: Command): void {
  const command = program
    .command('status')
    .description(
      "Show an agent's VMs (name, state, steps, memory) and its migration, outgoing or incoming: in progress, else the last.",
    )
    .option('--control <url>', 'the agent control URL', controlUrlFlag, 'ws://127.0.0.1:7171')
    .option('--json', 'print {"vms":[…],"migration":…} on stdout');
  addClientSecurityOptions(command).action(async (flags: SecurityFlags & { control: string; json?: boolean }) => {
    const client = await connectControl(flags.control, flags);
    try {
      const { vms } = await client.request('query-vms', {});
      const migration = await client.request('query-migrate', {});
      if (flags.json) {
        process.stdout.write(JSON.stringify({ vms, migration }) + '\n');
        return;
      }
      if (vms.length === 0) process.stdout.write('no VMs hosted\n');
      for (const vm of vms) {
        process.stdout.write(
          `${vm.name.padEnd(16)} ${vm.state.padEnd(14)} ${formatBytes(vm.memoryBytes).padStart(10)}  ${String(vm.steps).padStart(12)} steps  ${vm.workload}\n`,
        );
      }
      if (migration) process.stdout.write(describeMigration(migration) + '\n');
    } finally {
      client.close();
    }
  });
}
