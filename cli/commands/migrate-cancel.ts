/**
 * `livemig migrate-cancel`: cancel a migration on its source agent (QMP `migrate_cancel`, virsh
 * `domjobabort`) — the one given by --migration, else the one in flight — and wait for its
 * report: the VM keeps running on the source, the destination discards its copy. Past the point
 * of no return the agent refuses and says why (ERR_VM_STATE, exit 1); so does a migration that
 * is over already. Exit 0 once the report says cancelled.
 */
import type { Command } from 'commander';
import { MigrationError } from '@livemig/shared';
import { followMigration } from '../follow-migration.ts';
import { controlUrlFlag, migrationIdFlag } from '../options.ts';
import { addClientSecurityOptions, connectControl, type SecurityFlags } from '../security-flags.ts';

interface MigrateCancelFlags extends SecurityFlags {
  control: string;
  migration?: string;
}

export function registerMigrateCancelCommand(program: Command): void {
  const command = program
    .command('migrate-cancel')
    .description(
      'Cancel a migration on its source agent (virsh domjobabort): the VM keeps running there. ' +
        'Refused past the point of no return.',
    )
    .option('--control <url>', 'control URL of the source agent', controlUrlFlag, 'ws://127.0.0.1:7171')
    .option(
      '--migration <id>',
      'the migration to cancel, as `livemig migrate --detach` printed it (default: the one in flight)',
      migrationIdFlag,
    )
    .addHelpText(
      'after',
      '\nExit status: 0 cancelled; 1 not cancelled — no such migration, over already, or past its point of no ' +
        'return (post-copy once the destination runs the VM: the reason is printed); 2 bad input.',
    );
  addClientSecurityOptions(command).action(async (flags: MigrateCancelFlags) => {
    const client = await connectControl(flags.control, flags);
    try {
      const info = await client.request('query-migrate', flags.migration ? { migrationId: flags.migration } : {});
      if (!info) throw new MigrationError('ERR_NOT_FOUND', `no migration on the agent at ${flags.control}`);
      const { migrationId } = info;
      if (info.direction === 'incoming') {
        throw new MigrationError(
          'ERR_NOT_FOUND',
          `migration ${migrationId} of ${info.vm} is an incoming one here: migrate-cancel runs on its source agent`,
        );
      }
      const { cancelled } = await client.request('migrate-cancel', { migrationId });
      if (!cancelled) {
        throw new MigrationError('ERR_VM_STATE', `migration ${migrationId} is over already (${info.status})`);
      }
      process.stdout.write(`cancelling migration ${migrationId} of ${info.vm}\n`);
      const report = await followMigration(client, migrationId, { progress: false });
      const runsOn = report.vmRunsOn ? `; the VM runs on: ${report.vmRunsOn}` : '';
      process.stdout.write(`migration ${migrationId}: ${report.outcome}${runsOn}\n`);
      if (report.outcome !== 'cancelled') process.exitCode = 1;
    } finally {
      client.close();
    }
  });
}
