/** The subcommands, in the order `--help` lists them. Each file registers one command. */
import type { Command } from 'commander';
import { registerAgentCommand } from './agent.ts';
import { registerAuditCommand } from './audit.ts';
import { registerDemoCommand } from './demo.ts';
import { registerDestCommand } from './dest.ts';
import { registerEventsCommand } from './events.ts';
import { registerLabCommand } from './lab.ts';
import { registerMigrateCancelCommand } from './migrate-cancel.ts';
import { registerMigrateCommand } from './migrate.ts';
import { registerPkiCommand } from './pki.ts';
import { registerPrepareIncomingCommand } from './prepare-incoming.ts';
import { registerProbeCommand } from './probe.ts';
import { registerSourceCommand } from './source.ts';
import { registerStatusCommand } from './status.ts';
import { registerStopContCommands } from './stop-cont.ts';
import { registerVmCommand } from './vm.ts';

export const COMMANDS: ReadonlyArray<(program: Command) => void> = [
  registerDemoCommand,
  registerMigrateCommand,
  registerMigrateCancelCommand,
  registerPrepareIncomingCommand,
  registerStatusCommand,
  registerEventsCommand,
  registerStopContCommands,
  registerAgentCommand,
  registerSourceCommand,
  registerDestCommand,
  registerVmCommand,
  registerLabCommand,
  registerProbeCommand,
  registerPkiCommand,
  registerAuditCommand,
];
