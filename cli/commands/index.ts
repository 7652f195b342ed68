/**
 * The subcommands, in the order `--help` lists them. Each file registers one command (or a
 * couple of names for it); each is imported only when needed: a command's implementation pulls
 * in most of livemig (the agent, the engine, the report renderers), about 0.5 s of module loading
 * per CLI process here, so `livemig status` loads status.ts alone (program.ts buildProgram).
 */
import type { Command } from 'commander';

export interface CommandModule {
  /** The command names the module registers (a first operand naming one loads it alone). */
  names: readonly string[];
  load(): Promise<(program: Command) => void>;
}

export const COMMANDS: readonly CommandModule[] = [
  { names: ['demo'], load: async () => (await import('./demo.ts')).registerDemoCommand },
  {
    names: ['migrate', 'migrate-start-postcopy'],
    load: async () => (await import('./migrate.ts')).registerMigrateCommand,
  },
  { names: ['migrate-cancel'], load: async () => (await import('./migrate-cancel.ts')).registerMigrateCancelCommand },
  {
    names: ['prepare-incoming'],
    load: async () => (await import('./prepare-incoming.ts')).registerPrepareIncomingCommand,
  },
  { names: ['status'], load: async () => (await import('./status.ts')).registerStatusCommand },
  { names: ['events'], load: async () => (await import('./events.ts')).registerEventsCommand },
  { names: ['dashboard'], load: async () => (await import('./dashboard.ts')).registerDashboardCommand },
  {
    names: ['query-dirty-rate'],
    load: async () => (await import('./query-dirty-rate.ts')).registerQueryDirtyRateCommand,
  },
  { names: ['compare'], load: async () => (await import('./compare.ts')).registerCompareCommand },
  { names: ['list'], load: async () => (await import('./list.ts')).registerListCommand },
  { names: ['create-vm'], load: async () => (await import('./create-vm.ts')).registerCreateVmCommand },
  { names: ['destroy-vm'], load: async () => (await import('./destroy-vm.ts')).registerDestroyVmCommand },
  { names: ['stop', 'cont'], load: async () => (await import('./stop-cont.ts')).registerStopContCommands },
  { names: ['agent'], load: async () => (await import('./agent.ts')).registerAgentCommand },
  { names: ['source'], load: async () => (await import('./source.ts')).registerSourceCommand },
  { names: ['dest'], load: async () => (await import('./dest.ts')).registerDestCommand },
  { names: ['run-vm', 'vm'], load: async () => (await import('./run-vm.ts')).registerRunVmCommand },
  { names: ['lab'], load: async () => (await import('./lab.ts')).registerLabCommand },
  { names: ['probe'], load: async () => (await import('./probe.ts')).registerProbeCommand },
  { names: ['pki'], load: async () => (await import('./pki.ts')).registerPkiCommand },
  { names: ['audit'], load: async () => (await import('./audit.ts')).registerAuditCommand },
];

/**
 * The modules to load for `args` (the arguments after the script): the one whose command the
 * first operand names; every one otherwise (`--help`, `help …`, a misspelt command — commander's
 * "did you mean" needs them all).
 */
export function commandsFor(args: readonly string[] | undefined): readonly CommandModule[] {
  const first = args?.find((arg) => !arg.startsWith('-'));
  const named = first === undefined ? undefined : COMMANDS.find((m) => m.names.includes(first));
  return named ? [named] : COMMANDS;
}
