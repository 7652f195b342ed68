/**
 * `livemig migrate`: ask a source agent to migrate one of its VMs to a destination agent,
 * follow it (progress bar on a TTY), and print the report — a table for people, or exactly
 * one JSON object on stdout with --json. Exit status 0 only when the migration completed.
 */
import type { Command } from 'commander';
import { parseHostPort, formatHostPort } from '@livemig/shared';
import { ControlClient } from '@livemig/shared/control';
import { formatReport } from '@livemig/shared/report';
import { followMigration } from '../follow-migration.ts';
import { durationFlag, modeFlag, positiveIntFlag, rateFlag, flag, type ModeName } from '../options.ts';

interface MigrateFlags {
  control: string;
  vm: string;
  to: string;
  mode: ModeName;
  downtimeLimit: number;
  maxRounds: number;
  maxBandwidth?: number;
  json?: boolean;
}

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('Migrate a running VM from a source agent to a destination agent, then print the report.')
    .option('--control <url>', 'the source agent control URL', 'ws://127.0.0.1:7171')
    .requiredOption('--vm <name>', 'the VM to migrate (see `livemig status`)')
    .requiredOption(
      '--to <host:port>',
      'the destination agent data address',
      flag((text) => formatHostPort(parseHostPort(text, '--to'))),
    )
    .option('--mode <mode>', 'precopy (post-copy and hybrid arrive in a later release)', modeFlag, 'precopy')
    .option('--downtime-limit <duration>', 'switch over once the rest fits in this downtime', durationFlag, 300)
    .option('--max-rounds <n>', 'switch over after this many pre-copy rounds at the latest', positiveIntFlag, 30)
    .option('--max-bandwidth <rate>', 'cap the data plane, e.g. 1gbit, 100mbit, 125MB/s (default: unlimited)', rateFlag)
    .option('--json', 'print exactly one JSON report (schema livemig.report/1) on stdout')
    .addHelpText(
      'after',
      '\nExample:\n  livemig migrate --control ws://127.0.0.1:7171 --vm vm1 --to 127.0.0.1:7070 --max-bandwidth 1gbit\n' +
        '\nExit status: 0 completed, 1 failed or cancelled, 2 bad input.',
    )
    .action(async (flags: MigrateFlags) => {
      const client = await ControlClient.connect(flags.control);
      try {
        const { migrationId } = await client.request('migrate', {
          vm: flags.vm,
          to: flags.to,
          mode: flags.mode,
          params: {
            downtimeLimitMs: flags.downtimeLimit,
            maxRounds: flags.maxRounds,
            maxBandwidthBps: flags.maxBandwidth ?? null,
          },
        });
        const report = await followMigration(client, migrationId, { progress: !flags.json && process.stderr.isTTY });
        process.stdout.write(flags.json ? JSON.stringify(report) + '\n' : formatReport(report) + '\n');
        if (report.outcome !== 'completed') process.exitCode = 1;
      } finally {
        client.close();
      }
    });
}
