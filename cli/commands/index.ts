/** The subcommands, in the order `--help` lists them. Each file registers one command. */
import type { Command } from 'commander';
import { registerVmCommand } from './vm.ts';

export const COMMANDS: ReadonlyArray<(program: Command) => void> = [registerVmCommand];
