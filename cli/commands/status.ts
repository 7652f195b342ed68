/** `livemig status`: the VMs an agent hosts and any migration in progress. */
import type { Command } from 'commander';
import { formatBytes, formatDuration, formatRate } from '@livemig/shared';
import { controlUrlFlag } from '../options.ts';
import { addClientSecurityOptions, connectControl, type SecurityFlags } from '../security-flags.ts';

export function registerStatusCommand(program: Command): void {
  const command = program
    .command('status')
    .description("Show an agent's VMs (name, state, steps, memory) and any migration in progress.")
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
      if (migration) {
        process.stdout.write(
          `migration ${migration.migrationId} of ${migration.vm}: ${migration.status}, round ${migration.pass}, ` +
            `${formatBytes(migration.transferred)} sent, ${formatBytes(migration.remaining)} dirty, ` +
            `${formatRate((migration.mbps * 1e6) / 8)}, expected downtime ${formatDuration(migration.expectedDowntime)}\n`,
        );
      }
    } finally {
      client.close();
    }
  });
}
