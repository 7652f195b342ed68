/**
 * Asking a plaintext agent process (processes.ts) things over its control API, one connection
 * per question — for the tests that stand in the middle of a plaintext data link or look at an
 * agent's process from outside (fleet.ts does the same for a secure fleet's agents).
 */
import { ControlClient } from '@livemig/shared/control';
import type { AgentProcess } from './processes.ts';

/** Run `run` on a control connection of its own to `agent`. */
export async function ask<T>(agent: AgentProcess, run: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = await ControlClient.connect(agent.control);
  try {
    return await run(client);
  } finally {
    client.close();
  }
}

/** The states of the VMs `agent` hosts or hosted (query-vms). */
export async function vmStates(agent: AgentProcess): Promise<string[]> {
  return (await ask(agent, (client) => client.request('query-vms', {}))).vms.map((vm) => vm.state);
}

/** "HOST:PORT" (an agent's data address) as net.connect takes it. */
export function hostPort(address: string): { host: string; port: number } {
  const [host, port] = address.split(':') as [string, string];
  return { host, port: Number(port) };
}
