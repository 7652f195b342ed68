/** The subcommands, in the order `--help` lists them. Each file registers one command. */
import type { Command } from 'commander';
import { registerAgentCommand } from './agent.ts';
import { registerAuditCommand } from './audit.ts';
import { registerCompareCommand } from './compare.ts';
import { registerCreateVmCommand } from './create-vm.ts';
import { registerDashboardCommand } from './dashboard.ts';
import { registerDemoCommand } from './demo.ts';
import { registerDestCommand } from './dest.ts';
import { registerDestroyVmCommand } from './destroy-vm.ts';
import { registerEventsCommand } from './events.ts';
import { registerLabCommand } from './lab.ts';
import { registerListCommand } from './list.ts';
import { registerMigrateCancelCommand } from './migrate-cancel.ts';
import { registerMigrateCommand } from './migrate.ts';
import { registerPkiCommand } from './pki.ts';
import { registerPrepareIncomingCommand } from './prepare-incoming.ts';
import { registerProbeCommand } from './probe.ts';
import { registerQueryDirtyRateCommand } from './query-dirty-rate.ts';
import { registerRunVmCommand } from './run-vm.ts';
import { registerSourceCommand } from './source.ts';
import { registerStatusCommand } from './status.ts';
import { registerStopContCommands } from './stop-cont.ts';

export const COMMANDS: ReadonlyArray<(program: Command) => void> = [
  registerDemoCommand,
  registerMigrateCommand,
  registerMigrateCancelCommand,
  registerPrepareIncomingCommand,
  registerStatusCommand,
  registerEventsCommand,
  registerDashboardCommand,
  registerQueryDirtyRateCommand,
  registerCompareCommand,
  registerListCommand,
  registerCreateVmCommand,
  registerDestroyVmCommand,
  registerStopContCommands,
  registerAgentCommand,
  registerSourceCommand,
  registerDestCommand,
  registerRunVmCommand,
  registerLabCommand,
  registerProbeCommand,
  registerPkiCommand,
  registerAuditCommand,
];
