/**
 * `livemig create-vm | list | destroy-vm` against a real secure agent: a VM created from the
 * command line runs and is listed (table and --json), destroy-vm removes it; a bad spec is bad
 * input (exit 2, one coded line) and creates nothing; the agent's refusals are failed operations
 * (exit 1): a name taken, a VM that is not there, and a role short of admin (ERR_FORBIDDEN).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { VmInfo } from '@livemig/shared/control';
import { issueCertificate } from '@livemig/shared/security';
import { useFleet, type FleetAgent } from '../helpers/fleet.ts';
import { runCli, stopAll } from '../helpers/processes.ts';
import { useSharedPair } from '../helpers/shared-pair.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();
beforeAll(() => issueCertificate(fleet.pkiDir, { name: 'victor', role: 'viewer' }));
afterEach(stopAll);
// One agent for every test (its start is ~1 s of the two cores): each test finds it without VMs,
// those it created are destroyed after it (test/helpers/shared-pair.ts).
const shared = useSharedPair({ start: () => Promise.all([fleet.agent({ kept: true })]), ask: fleet.ask });
const theAgent = async (): Promise<FleetAgent> => (await shared.agents())[0];

const ONE_ERROR_LINE = /^livemig: ERR_[A-Z_]+: [^\n]+\n$/;
const MiB = 1024 * 1024;

/** `livemig list --json` on `agent`, as the admin. */
async function listed(agent: FleetAgent): Promise<VmInfo[]> {
  const run = await fleet.cli(['list', '--control', agent.control, '--json'], 'admin');
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { vms: VmInfo[] }).vms;
}

describe('livemig create-vm, list, destroy-vm', () => {
  it('create-vm boots a VM that runs and is listed; destroy-vm removes it', async () => {
    const agent = await theAgent();
    const at = ['--control', agent.control];
    const created = await fleet.cli(
      ['create-vm', ...at, '--vm', 'vm2', '--memory', '16MiB', '--workload', 'hotset:wss=1MiB,rate=5000', '--json'],
      'admin',
    );
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({
      name: 'vm2',
      state: 'running',
      memoryBytes: 16 * MiB,
      workload: 'hotset:wss=1MiB,rate=5000',
    });
    const plain = await fleet.cli(['create-vm', ...at, '--vm', 'vm3', '--memory', '8MiB', '--seed', '3'], 'admin');
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^created vm3: running, 8\.00 MiB, workload idle(:\S+)?\n$/);

    const vms = await listed(agent);
    expect(vms.map((vm) => [vm.name, vm.state])).toEqual([
      ['vm2', 'running'],
      ['vm3', 'running'],
    ]);
    // It runs: its steps go on.
    await waitUntil(async () => (await listed(agent)).find((vm) => vm.name === 'vm2')!.steps > vms[0]!.steps, {
      what: 'vm2 runs',
    });
    const table = await fleet.cli(['list', ...at], 'operator');
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ Name\s+State\s+Memory\s+Steps\s+Workload\s+NIC$/);
    expect(lines[1]).toMatch(/^ -+$/);
    expect(lines.slice(2)).toEqual([
      expect.stringMatching(/^ vm2\s+running\s+16\.0 MiB\s+\d+\s+hotset:wss=1MiB,rate=5000\s+-$/),
      expect.stringMatching(/^ vm3\s+running\s+8\.00 MiB\s+\d+\s+idle\S*\s+-$/),
    ]);

    const destroyed = await fleet.cli(['destroy-vm', ...at, '--vm', 'vm2'], 'admin');
    expect(destroyed).toMatchObject({ code: 0, stdout: 'destroyed vm2\n', stderr: '' });
    expect((await listed(agent)).map((vm) => vm.name)).toEqual(['vm3']);
  });

  it('the agent refuses: a name taken (ERR_BUSY) and a VM that is not there (ERR_NOT_FOUND) exit 1', async () => {
    const agent = await theAgent();
    const at = ['--control', agent.control];
    expect((await fleet.cli(['create-vm', ...at, '--vm', 'vm', '--memory', '4MiB'], 'admin')).code).toBe(0);
    const taken = await fleet.cli(['create-vm', ...at, '--vm', 'vm', '--memory', '4MiB'], 'admin');
    const missing = await fleet.cli(['destroy-vm', ...at, '--vm', 'nope'], 'admin');
    for (const run of [taken, missing]) {
      expect(run.stderr).toMatch(ONE_ERROR_LINE);
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
    }
    expect(taken.stderr).toMatch(/^livemig: ERR_BUSY: /);
    expect(missing.stderr).toMatch(/^livemig: ERR_NOT_FOUND: .*nope/);
  });

  it('a bad spec is bad input, checked before the agent is asked: one coded line, exit 2, nothing created', async () => {
    const agent = await theAgent();
    const cases: Array<[string[], RegExp]> = [
      [['--memory', '1XB'], /^livemig: ERR_INVALID_SIZE: --memory: /],
      [['--memory', '4MiB', '--workload', 'hotset:wss=8MiB'], /^livemig: ERR_INVALID_WORKLOAD: .*wss/],
      [['--workload', 'bitcoin'], /^livemig: ERR_INVALID_WORKLOAD: --workload: /],
      [['--init', 'ones'], /^livemig: ERR_INVALID_INIT: .*--init "ones"/],
      [['--memory', '8MiB', '--workload', 'kv'], /^livemig: ERR_INVALID_ARGUMENT: .*--nic/],
      [['--vm', 'no spaces'], /^livemig: ERR_INVALID_ARGUMENT: --vm: bad VM name "no spaces"/],
    ];
    const runs = await Promise.all(
      cases.map(([args]) => fleet.cli(['create-vm', '--control', agent.control, '--vm', 'bad', ...args], 'admin')),
    );
    runs.forEach((run, i) => {
      expect(run.stderr).toMatch(ONE_ERROR_LINE);
      expect(run.stderr).toMatch(cases[i]![1]);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stdout).toBe('');
    });
    expect(await listed(agent)).toEqual([]);
  });

  it('a viewer may list but not create or destroy; an operator may not create (ERR_FORBIDDEN, exit 1)', async () => {
    const agent = await theAgent();
    const at = ['--control', agent.control];
    expect((await fleet.cli(['create-vm', ...at, '--vm', 'vm', '--memory', '4MiB'], 'admin')).code).toBe(0);
    const viewer = (args: string[]): ReturnType<typeof runCli> =>
      runCli([...args, ...at, '--pki', fleet.pkiDir, '--name', 'victor']);
    const [list, create, destroy, operatorCreate] = await Promise.all([
      viewer(['list', '--json']),
      viewer(['create-vm', '--vm', 'vm2', '--memory', '4MiB']),
      viewer(['destroy-vm', '--vm', 'vm']),
      fleet.cli(['create-vm', ...at, '--vm', 'vm3', '--memory', '4MiB'], 'operator'),
    ]);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { vms: VmInfo[] }).vms.map((vm) => vm.name)).toEqual(['vm']);
    for (const [run, role, command] of [
      [create, 'viewer', 'create-vm'],
      [destroy, 'viewer', 'destroy-vm'],
      [operatorCreate, 'operator', 'create-vm'],
    ] as const) {
      expect(run.stderr).toMatch(ONE_ERROR_LINE);
      expect(run.stderr).toMatch(
        new RegExp(`^livemig: ERR_FORBIDDEN: .*role ${role} may not run ${command} \\(needs admin\\)`),
      );
      expect(run.code).toBe(1);
    }
    expect((await listed(agent)).map((vm) => [vm.name, vm.state])).toEqual([['vm', 'running']]);
  });
});
