/**
 * `livemig create-vm`: boot a VM on a running agent and start it (virsh `create`; the control
 * API's create-vm), described by the same flags as the agent's own --vm. The spec is checked
 * here first, so a bad one is bad input (exit 2) before any connection; the agent checks it
 * again, and refuses a name it hosts already (ERR_BUSY) or memory it cannot reserve
 * (ERR_NO_MEMORY), exit 1. Creating is an admin's (roles.ts).
 */
import type { Command } from 'commander';
import { formatBytes } from '@livemig/shared';
import type { VmInfo } from '@livemig/shared/control';
import { workloadHelp } from '@livemig/shared/vm';
import { controlUrlFlag } from '../options.ts';
import { addClientSecurityOptions, connectControl, type SecurityFlags } from '../security-flags.ts';
import { addVmSpecOptions, AGENT_VM_DEFAULTS, specFromFlags, vmNameFlag, type VmFlags } from '../vm-flags.ts';

interface CreateVmFlags extends VmFlags, SecurityFlags {
  control: string;
  vm: string;
  json?: boolean;
}

/** One VM in a line: name, state, memory, workload, NIC. */
export function describeVm(vm: VmInfo): string {
  const nic = vm.nic ? `, NIC ${vm.nic.address}` : '';
  const disk = vm.disk ? `, disk ${formatBytes(vm.disk.sizeBytes)}` : '';
  return `${vm.name}: ${vm.state}, ${formatBytes(vm.memoryBytes)}, workload ${vm.workload}${nic}${disk}`;
}

export function registerCreateVmCommand(program: Command): void {
  const command = program
    .command('create-vm')
    .description('Boot a VM on a running agent and start it (virsh create); the spec flags are the agent --vm ones.')
    .option('--control <url>', 'the agent control URL', controlUrlFlag, 'ws://127.0.0.1:7171')
    .requiredOption('--vm <name>', "the new VM's name: 1–64 letters, digits, '.', '_' or '-'", vmNameFlag);
  addVmSpecOptions(command, AGENT_VM_DEFAULTS).option('--json', 'print the VM as query-vms lists it, one JSON object');
  command.addHelpText(
    'after',
    `\n${workloadHelp()}\n\nExample: livemig create-vm --control ws://127.0.0.1:7071 --vm vm2 --memory 64MiB ` +
      '--workload hotset:wss=8MiB,rate=5000',
  );
  addClientSecurityOptions(command).action(async (flags: CreateVmFlags) => {
    const spec = specFromFlags(flags);
    const client = await connectControl(flags.control, flags);
    try {
      const vm = await client.request('create-vm', {
        name: flags.vm,
        memory: spec.memoryBytes,
        init: spec.init,
        workload: spec.workload,
        seed: spec.seed,
        ...(spec.nic === null ? {} : { nic: spec.nic }),
        ...(spec.disk === null ? {} : { disk: spec.disk }),
      });
      process.stdout.write(flags.json ? `${JSON.stringify(vm)}\n` : `created ${describeVm(vm)}\n`);
    } finally {
      client.close();
    }
  });
}
