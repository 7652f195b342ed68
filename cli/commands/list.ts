/**
 * `livemig list`: the VMs an agent hosts (virsh `list`; the control API's query-vms), each with
 * its state — running, paused, migrating-out, incoming, or migrated: one that left, kept as a
 * record (or, after a handoff whose confirmation was lost, paused here: `cont --force`). All are
 * listed, as `virsh list --all` lists the inactive ones too: a VM that left is worth seeing.
 */
import type { Command } from 'commander';
import { formatBytes } from '@livemig/shared';
import type { VmInfo } from '@livemig/shared/control';
import { controlUrlFlag } from '../options.ts';
import { addClientSecurityOptions, connectControl, type SecurityFlags } from '../security-flags.ts';

interface ListFlags extends SecurityFlags {
  control: string;
  json?: boolean;
}

/** The VMs as a table, a header first (as virsh prints one even when the list is empty). */
export function formatVmTable(vms: readonly VmInfo[]): string {
  const rows = [
    ['Name', 'State', 'Memory', 'Steps', 'Workload', 'NIC'],
    ...vms.map((vm) => [
      vm.name,
      vm.state,
      formatBytes(vm.memoryBytes),
      String(vm.steps),
      vm.workload,
      vm.nic?.address ?? '-',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]): string =>
    ` ${row.map((cell, i) => (i === 2 || i === 3 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('   ')}`.trimEnd();
  const [header, ...body] = rows;
  const rule = ` ${'-'.repeat(widths.reduce((sum, w) => sum + w, 0) + 3 * (widths.length - 1))}`;
  return [line(header!), rule, ...body.map(line)].join('\n') + '\n';
}

export function registerListCommand(program: Command): void {
  const command = program
    .command('list')
    .description("List an agent's VMs (virsh list): name, state, memory, steps, workload, NIC.")
    .option('--control <url>', 'the agent control URL', controlUrlFlag, 'ws://127.0.0.1:7171')
    .option('--json', 'print {"vms":[…]} on stdout, each VM as query-vms gives it');
  addClientSecurityOptions(command).action(async (flags: ListFlags) => {
    const client = await connectControl(flags.control, flags);
    try {
      const { vms } = await client.request('query-vms', {});
      process.stdout.write(flags.json ? `${JSON.stringify({ vms })}\n` : formatVmTable(vms));
    } finally {
      client.close();
    }
  });
}
