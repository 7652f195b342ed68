/**
 * The CLI's one error path (cli/usage.ts), on the real program in-process: every subcommand,
 * found by walking the commander program (so a new command or option is covered without
 * touching this file), is fed a bad value for each option that takes one, an unknown option and
 * a missing value. Each must be refused while the command line is parsed — before any action
 * runs — as exactly one line `livemig: ERR_CODE: message` naming the flag, with exit status 2.
 *
 * Exempt: options whose value is a name or a path (placeholder <name>, <dir>, <file>, <iface>,
 * <device>, <pattern>, <ticket>): any string is a valid name or path, and only using it can fail.
 */
import { Command, Help, Option, type Command as CommandType } from 'commander';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildProgram, runCli } from '../../../cli/program.ts';
import { allCommands, useOneErrorPath, type CliOutput } from '../../../cli/usage.ts';

const EXEMPT_PLACEHOLDERS = new Set(['name', 'dir', 'file', 'iface', 'device', 'pattern', 'ticket']);
const BAD_VALUE = 'bad value';
const ONE_ERROR_LINE = /^livemig: ERR_[A-Z_]+: .+\n$/;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the real program in-process; reaching any command's action is a failure of the parse-time checks. */
async function run(
  args: readonly string[],
  program?: (output: CliOutput) => CommandType | Promise<CommandType>,
): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const output: CliOutput = { out: (text) => (stdout += text), err: (text) => (stderr += text) };
  const built = await (program ?? buildProgram)(output);
  built.hook('preAction', (_program, command) => {
    throw new Error(`reached the action of \`${command.name()}\` with ${args.join(' ')}`);
  });
  const code = await runCli(built, ['node', 'livemig', ...args], output);
  return { code, stdout, stderr };
}

function pathOf(command: CommandType): string[] {
  const names: string[] = [];
  for (let c: CommandType | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names;
}

function placeholder(option: Option): string | undefined {
  return /[<[]([^>\]]+)[>\]]/.exec(option.flags)?.[1];
}

const takesValue = (option: Option): boolean => option.required || option.optional;

const program = await buildProgram();
const leaves = allCommands(program).filter((command) => command.commands.length === 0);
const valueOptions = leaves.flatMap((command) =>
  command.options.filter(takesValue).map((option) => ({ command, option, path: pathOf(command) })),
);
const checked = valueOptions.filter(({ option }) => !EXEMPT_PLACEHOLDERS.has(placeholder(option) ?? ''));
const label = ({ path, option }: { path: string[]; option: Option }): string => `${path.join(' ')} ${option.long}`;

describe('every subcommand and option: bad input is `livemig: ERR_CODE: message`, exit 2', () => {
  it('the walk finds the commands and their options', () => {
    const names = leaves.map((command) => pathOf(command).join(' '));
    expect(names).toEqual(
      expect.arrayContaining([
        'migrate',
        'migrate-cancel',
        'run-vm',
        'create-vm',
        'list',
        'query-dirty-rate',
        'probe',
        'pki issue',
        'lab run',
      ]),
    );
    expect(checked.length).toBeGreaterThan(40);
  });

  it.each(checked.map((entry) => [label(entry), entry] as const))('%s with a bad value', async (_label, entry) => {
    const result = await run([...entry.path, entry.option.long!, BAD_VALUE]);
    expect(result.stderr).toMatch(ONE_ERROR_LINE);
    expect(result.stderr).toContain(entry.option.long!);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
  });

  it.each(valueOptions.filter(({ option }) => option.required).map((entry) => [label(entry), entry] as const))(
    '%s without its value',
    async (_label, entry) => {
      const result = await run([...entry.path, entry.option.long!]);
      expect(result.stderr).toMatch(ONE_ERROR_LINE);
      expect(result.stderr).toContain(`'${entry.option.flags}' argument missing`);
      expect(result.code).toBe(2);
    },
  );

  it.each(leaves.map((command) => [pathOf(command).join(' '), command] as const))(
    '%s with an unknown option',
    async (name, command) => {
      const result = await run([...pathOf(command), '--no-such-flag']);
      expect(result.stderr).toMatch(ONE_ERROR_LINE);
      // commander reports a missing required option first.
      if (!command.options.some((option) => option.mandatory)) {
        expect(result.stderr).toBe(
          `livemig: ERR_INVALID_ARGUMENT: unknown option '--no-such-flag' (see \`livemig ${name} --help\`)\n`,
        );
      }
      expect(result.code).toBe(2);
    },
  );

  it('an unknown command, too many arguments, a missing required option', async () => {
    const unknown = await run(['migrat']);
    expect(unknown.stderr).toBe(
      "livemig: ERR_INVALID_ARGUMENT: unknown command 'migrat' (Did you mean migrate?) (see `livemig --help`)\n",
    );
    const extra = await run(['status', 'vm1']);
    expect(extra.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: too many arguments for 'status'\. .*\n$/);
    const required = await run(['probe']);
    expect(required.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: required option '--target <host:port>' not/);
    for (const result of [unknown, extra, required]) expect(result.code).toBe(2);
  });

  it('a command that needs a subcommand shows its help, then the error line', async () => {
    const result = await run(['pki']);
    expect(result.stderr).toMatch(/^Usage: livemig pki /);
    expect(result.stderr).toMatch(/\nlivemig: ERR_INVALID_ARGUMENT: give a command \(see `livemig pki --help`\)\n$/);
    expect(result.code).toBe(2);
  });

  it('a unit the parser does not know is reported against its own flag, with its own code', async () => {
    // Not "--steps": each VM flag is checked as it is parsed, before the command checks them together.
    const memory = await run(['run-vm', '--memory', '1XB']);
    expect(memory.stderr).toMatch(/^livemig: ERR_INVALID_SIZE: --memory: cannot parse size "1XB"/);
    const bandwidth = await run(['migrate', '--max-bandwidth', '10 parsecs']);
    expect(bandwidth.stderr).toMatch(/^livemig: ERR_INVALID_RATE: --max-bandwidth: /);
    const mode = await run(['migrate', '--mode', 'teleport']);
    expect(mode.stderr).toBe(
      'livemig: ERR_INVALID_ARGUMENT: --mode: expected one of precopy, postcopy, hybrid, auto, got "teleport"\n',
    );
    const control = await run(['status', '--control', 'ws://[::1']);
    expect(control.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: --control: bad control URL "ws:\/\/\[::1"/);
    for (const result of [memory, bandwidth, mode, control]) expect(result.code).toBe(2);
  });

  it("commander's invalid choice and InvalidArgumentError take the same path", async () => {
    const synthetic = (output: CliOutput): CommandType => {
      const p = new Command('livemig').configureOutput({
        writeOut: (text) => output.out(text),
        writeErr: (text) => output.err(text),
        outputError: () => {},
      });
      p.command('paint')
        .addOption(new Option('--color <color>').choices(['red', 'blue']))
        .action(() => {});
      useOneErrorPath(p);
      return p;
    };
    const choice = await run(['paint', '--color', 'green'], synthetic);
    expect(choice.stderr).toBe(
      'livemig: ERR_INVALID_ARGUMENT: --color: Allowed choices are red, blue. (got "green")\n',
    );
    expect(choice.code).toBe(2);
    const origin = await run(['agent', '--allow-origin', 'https://console.example/']); // agent.ts throws InvalidArgumentError
    expect(origin.stderr).toMatch(/^livemig: ERR_INVALID_ARGUMENT: --allow-origin must be an origin/);
    expect(origin.code).toBe(2);
  });
});

describe('--version and --help', () => {
  it('--version prints the version of package.json', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    const result = await run(['--version']);
    expect(result).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('every quantity default is shown with its unit', () => {
    const help = new Help();
    const quantities = allCommands(program)
      .flatMap((command) => command.options)
      .filter((option) => ['duration', 'size', 'rate'].includes(placeholder(option) ?? ''))
      .filter((option) => option.defaultValue !== undefined);
    expect(quantities.length).toBeGreaterThan(5);
    for (const option of quantities) {
      expect(help.optionDescription(option), option.flags).toMatch(
        /\(default: [\d.]+ (ms|s|B|KiB|MiB|GiB|B\/s|mbit|gbit)\)$/,
      );
    }
    const vm = program.commands.find((command) => command.name() === 'run-vm')!;
    expect(help.optionDescription(vm.options.find((option) => option.long === '--memory')!)).toContain(
      '(default: 64 MiB)',
    );
  });
});
