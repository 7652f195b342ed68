/**
 * `livemig source`: the livemig agent (agent.ts) under its historical name, with the source's
 * default ports: control on 127.0.0.1:7171 and no data port unless --listen is given.
 */
import type { Command } from 'commander';
import { addAgentCommand } from './agent.ts';

export function registerSourceCommand(program: Command): void {
  addAgentCommand(program, {
    name: 'source',
    description:
      'Run an agent with the source defaults: host VMs and migrate them out on request (control on :7171, ' +
      'no data port unless --listen).',
    control: '127.0.0.1:7171',
  });
}
