/**
 * The CLI loads only the command it runs (commands/index.ts): the names each module declares
 * must be exactly the commands it registers, or `livemig <name>` would load the wrong module
 * (and fail as an unknown command).
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { COMMANDS, commandsFor } from '../../../cli/commands/index.ts';
import { buildProgram } from '../../../cli/program.ts';

describe('loading one command', () => {
  it('each module declares exactly the command names it registers', async () => {
    for (const module of COMMANDS) {
      const program = new Command('livemig');
      (await module.load())(program);
      expect(program.commands.map((c) => c.name()).sort(), module.names.join(', ')).toEqual([...module.names].sort());
    }
  });

  it('the first operand picks its module; no operand, `help` or an unknown name loads them all', () => {
    expect(commandsFor(['status', '--control', 'ws://127.0.0.1:1']).map((m) => m.names)).toEqual([['status']]);
    expect(commandsFor(['migrate-start-postcopy', '--control', 'ws://127.0.0.1:1']).map((m) => m.names[0])).toEqual([
      'migrate',
    ]);
    expect(commandsFor(['cont'])).toHaveLength(1);
    for (const args of [[], ['--help'], ['-V'], ['help', 'status'], ['migrat']]) {
      expect(commandsFor(args), args.join(' ')).toBe(COMMANDS);
    }
  });

  it('the program built for one command has that command alone; built for none, every command in order', async () => {
    const one = await buildProgram(undefined, ['node', 'livemig', 'stop', '--vm', 'x']);
    expect(one.commands.map((c) => c.name())).toEqual(['stop', 'cont']);
    const all = await buildProgram();
    expect(all.commands.map((c) => c.name())).toEqual(COMMANDS.flatMap((m) => m.names));
  });
});
