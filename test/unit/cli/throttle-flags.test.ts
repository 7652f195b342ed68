/**
 * Throttling the guest to converge, on the command line (issue 17): `--auto-converge` with QEMU's
 * knobs (`--cpu-throttle-initial`, `--cpu-throttle-increment`, `--max-cpu-throttle`,
 * `--throttle-trigger-threshold`, percentages) and `--dirty-limit RATE` (a rate with its unit,
 * e.g. 20MB/s), on `migrate` and `demo` alike, parsed into the control API's MigrateParams; bad
 * values refused while parsing, coded. The engine checks the combinations
 * (test/unit/agent-source/params-throttle.test.ts).
 */
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram, runCli } from '../../../cli/program.ts';
import type { CliOutput } from '../../../cli/usage.ts';
import { migrateParams, type MigrateFlags } from '../../../cli/options.ts';

interface Parsed {
  code: number;
  stderr: string;
  stdout: string;
  /** The options the command's action would have run with (undefined: never reached). */
  opts: Record<string, unknown> | undefined;
}

/** Parse `args` with the real program in-process, stopping before any action runs. */
async function parse(args: readonly string[]): Promise<Parsed> {
  let stdout = '';
  let stderr = '';
  const output: CliOutput = { out: (text) => (stdout += text), err: (text) => (stderr += text) };
  const program = await buildProgram(output);
  let opts: Record<string, unknown> | undefined;
  const stop = new Error('stopped before the action');
  program.hook('preAction', (_program, command: Command) => {
    opts = command.opts();
    throw stop;
  });
  let code: number;
  try {
    code = await runCli(program, ['node', 'livemig', ...args], output);
  } catch (error) {
    if (error !== stop) throw error;
    code = 0;
  }
  return { code, stdout, stderr, opts };
}

const MIGRATE = ['migrate', '--vm', 'vm1', '--to', '127.0.0.1:7070'];

async function paramsOf(args: readonly string[]): Promise<ReturnType<typeof migrateParams>> {
  const parsed = await parse(args);
  expect(parsed.opts, parsed.stderr).toBeDefined();
  return migrateParams(parsed.opts as unknown as MigrateFlags);
}

describe('--auto-converge and --dirty-limit', () => {
  it.each([[MIGRATE], [['demo']]])('%j: absent, no throttle knob reaches MigrateParams', async (command) => {
    const params = await paramsOf(command);
    for (const key of [
      'autoConverge',
      'cpuThrottleInitial',
      'cpuThrottleIncrement',
      'maxCpuThrottle',
      'throttleTriggerThreshold',
      'dirtyLimitBps',
    ]) {
      expect(params).not.toHaveProperty(key);
    }
  });

  it.each([[MIGRATE], [['demo']]])('%j --auto-converge and its knobs', async (command) => {
    const params = await paramsOf([
      ...command,
      '--auto-converge',
      '--cpu-throttle-initial',
      '30',
      '--cpu-throttle-increment',
      '15',
      '--max-cpu-throttle',
      '90',
      '--throttle-trigger-threshold',
      '100',
    ]);
    expect(params).toMatchObject({
      autoConverge: true,
      cpuThrottleInitial: 30,
      cpuThrottleIncrement: 15,
      maxCpuThrottle: 90,
      throttleTriggerThreshold: 100,
    });
  });

  it.each([
    ['20MB/s', 20e6],
    ['160mbit', 20e6],
    ['16MiB/s', 16 * 2 ** 20],
    ['0.5MB/s', 0.5e6],
  ])('--dirty-limit %s is %d bytes/s', async (text, bps) => {
    expect((await paramsOf([...MIGRATE, '--dirty-limit', text])).dirtyLimitBps).toBe(bps);
  });

  it.each([
    ['--dirty-limit', '20', 'ERR_INVALID_RATE', /"20" needs a unit, e\.g\. 20MB\/s/],
    ['--dirty-limit', '0MB/s', 'ERR_INVALID_RATE', /must be > 0/],
    ['--dirty-limit', 'fast', 'ERR_INVALID_RATE', /cannot parse rate/],
    ['--cpu-throttle-initial', '0', 'ERR_INVALID_ARGUMENT', /from 1 to 99/],
    ['--cpu-throttle-increment', '100', 'ERR_INVALID_ARGUMENT', /from 1 to 99/],
    ['--max-cpu-throttle', '99.5', 'ERR_INVALID_ARGUMENT', /from 1 to 99/],
    ['--throttle-trigger-threshold', '101', 'ERR_INVALID_ARGUMENT', /from 1 to 100/],
  ])('%s %s is refused (%s)', async (flag, value, code, message) => {
    const parsed = await parse([...MIGRATE, flag, value]);
    expect(parsed.opts).toBeUndefined();
    expect(parsed.code).toBe(2);
    expect(parsed.stderr).toMatch(new RegExp(`^livemig: ${code}: ${flag}: `));
    expect(parsed.stderr).toMatch(message);
  });

  it("--help names QEMU's defaults", async () => {
    const help = (await parse(['migrate', '--help'])).stdout;
    expect(help).toMatch(/--auto-converge/);
    expect(help).toMatch(/--cpu-throttle-initial <percent>[\s\S]*?\(default 20\)/);
    expect(help).toMatch(/--cpu-throttle-increment <percent>[\s\S]*?\(default 10\)/);
    expect(help).toMatch(/--max-cpu-throttle <percent>[\s\S]*?\(default 99\)/);
    expect(help).toMatch(/--throttle-trigger-threshold <percent>[\s\S]*?\(default 50\)/);
    expect(help).toMatch(/--dirty-limit <rate>/);
  });
});
