/**
 * The CLI's one error path: every failure is the line `livemig: ERR_CODE: message` on stderr,
 * and the exit status is 2 for bad input, 1 for a failed operation (README, "Error codes").
 *
 * Bad input is found in three places, all ending here as coded MigrationErrors:
 * - an option's parser (options.ts) throws a MigrationError, or commander's InvalidArgumentError
 *   (ERR_INVALID_ARGUMENT): every parser is wrapped to name its flag in the message;
 * - commander's own checks (unknown option or command, missing value, missing required option,
 *   invalid choice, too many arguments) end in exitOverride() with a CommanderError whose code
 *   says which: ERR_INVALID_ARGUMENT with commander's message, which configureOutput() keeps it
 *   from printing itself;
 * - a command's action checks what no single flag can (e.g. `give --vm NAME and --to HOST:PORT`)
 *   and throws a MigrationError with an input code (INPUT_ERRORS).
 * The first two are usage errors (exit 2) whatever their code.
 */
import { CommanderError, type Command, type Option } from 'commander';
import { isMigrationError, MigrationError, type ErrorCode } from '@livemig/shared';
import { defaultDescription, type FlagParser } from './options.ts';

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** Codes that mean the input was bad wherever they are thrown: exit 2. */
const INPUT_ERRORS: ReadonlySet<ErrorCode> = new Set([
  'ERR_INVALID_ARGUMENT',
  'ERR_INVALID_SIZE',
  'ERR_INVALID_DURATION',
  'ERR_INVALID_RATE',
  'ERR_INVALID_WORKLOAD',
  'ERR_INVALID_INIT',
  'ERR_INSECURE',
]);

/** Errors found while parsing the command line. */
const usageErrors = new WeakSet<MigrationError>();

function usageError(code: ErrorCode, message: string, cause: unknown): MigrationError {
  const error = new MigrationError(code, message, { cause });
  usageErrors.add(error);
  return error;
}

/** Where the CLI writes: stdout and stderr, or a test's buffers. */
export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}

export const STDIO: CliOutput = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** `command` and every command under it. */
export function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

/**
 * Route every parse error of `program` and its commands through this error path, and show the
 * defaults of quantities with their units in --help. Call once every command is registered.
 */
export function useOneErrorPath(program: Command): void {
  for (const command of allCommands(program)) {
    command.exitOverride((error) => {
      throw fromCommander(error, command);
    });
    for (const option of command.options) nameFlagErrors(option);
  }
}

function nameFlagErrors(option: Option): void {
  const parse = option.parseArg;
  if (!parse) return;
  option.defaultValueDescription ??= defaultDescription(parse as FlagParser<unknown>, option.defaultValue);
  option.parseArg = <T>(value: string, previous: T): T => {
    try {
      return parse(value, previous);
    } catch (error) {
      throw flagError(option, value, error);
    }
  };
}

/** A parser's error as a usage error that names the flag and the value (unless its message does). */
function flagError(option: Option, value: string, error: unknown): MigrationError {
  const name = option.long ?? option.short ?? option.flags;
  let message = error instanceof Error ? error.message : String(error);
  if (!new RegExp(`${name}(?![\\w-])`).test(message)) message = `${name}: ${message}`;
  if (!message.includes(value)) message += ` (got ${JSON.stringify(value)})`;
  return usageError(isMigrationError(error) ? error.code : 'ERR_INVALID_ARGUMENT', message, error);
}

/** The `livemig …` words that run `command`. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** commander's parse errors as usage errors; --help and --version (exit 0) pass through. */
function fromCommander(error: CommanderError, command: Command): Error {
  if (error.exitCode === 0) return error;
  const see = `(see \`${commandPath(command)} --help\`)`;
  // No subcommand given: commander has shown the help, on stderr.
  if (error.code === 'commander.help') return usageError('ERR_INVALID_ARGUMENT', `give a command ${see}`, error);
  // commander's messages read "error: unknown option '--x'\n(Did you mean --y?)": one line, our prefix.
  const message = error.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
  return usageError('ERR_INVALID_ARGUMENT', `${message} ${see}`, error);
}

/** Print `error` as the one line and say the exit status. */
export function reportError(error: unknown, output: CliOutput): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  if (isMigrationError(error)) {
    output.err(`livemig: ${error.code}: ${error.message}\n`);
    return usageErrors.has(error) || INPUT_ERRORS.has(error.code) ? EXIT.usage : EXIT.failed;
  }
  // Anything else is a bug: the same line, then the stack to report it with.
  const message = error instanceof Error ? error.message : String(error);
  const stack = error instanceof Error && error.stack ? `${error.stack}\n` : '';
  output.err(`livemig: ERR_INTERNAL: ${message}\n${stack}`);
  return EXIT.failed;
}
