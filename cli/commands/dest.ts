/**
 * `livemig dest`: the livemig agent (agent.ts) under its historical name, with the destination's
 * default ports: data on 127.0.0.1:7070, control on 127.0.0.1:7071 (as `livemig agent`).
 */
import type { Command } from 'commander';
import { addAgentCommand } from './agent.ts';

export function registerDestCommand(program: Command): void {
  addAgentCommand(program, {
    name: 'dest',
    description:
      'Run an agent with the destination defaults: accept migrations on the data port (:7070), keep running ' +
      'the VMs received and migrate them on on request (control on :7071).',
    listen: '127.0.0.1:7070',
    control: '127.0.0.1:7071',
  });
}
