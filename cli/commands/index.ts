/** The subcommands, in the order `--help` lists them. Each file registers one command. */
import type { Command } from 'commander';
import { registerSourceCommand } from '@livemig/agent-source';
import { registerDestCommand } from '@livemig/agent-dest';
import { logLevelFlag } from '../options.ts';
import { registerDemoCommand } from './demo.ts';
import { registerLabCommand } from './lab.ts';
import { registerMigrateCommand } from './migrate.ts';
import { registerProbeCommand } from './probe.ts';
import { registerStatusCommand } from './status.ts';
import { registerStopContCommands } from './stop-cont.ts';
import { registerVmCommand } from './vm.ts';

export const COMMANDS: ReadonlyArray<(program: Command) => void> = [
  registerDemoCommand,
  registerMigrateCommand,
  registerStatusCommand,
  registerStopContCommands,
  (program) => registerSourceCommand(program, logLevelFlag),
  (program) => registerDestCommand(program, logLevelFlag),
  registerVmCommand,
  registerLabCommand,
  registerProbeCommand,
];
