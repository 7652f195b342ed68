/**
 * A VM with a disk in a real agent (issue 15, second increment): `livemig agent --vm v --disk
 * 64MiB --workload disk:…` boots it with its image in the agent's state directory
 * (STATE-DIR/disks/v.img); query-vms shows the disk; the guest keeps stepping and reads back
 * what it wrote; destroy-vm removes the image and its allocation map (migrating it:
 * disk-migration.integration.test.ts).
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { useFleet } from '../helpers/fleet.ts';
import { stopAll } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const fleet = useFleet();
const dirs: string[] = [];
afterEach(async () => {
  await stopAll();
  await Promise.all(dirs.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

const MiB = 1024 * 1024;
const exists = (path: string): Promise<boolean> =>
  fs.stat(path).then(
    () => true,
    () => false,
  );

describe('a VM with a disk in an agent', () => {
  it('runs with its image in the state directory, is listed with its disk, and destroy-vm removes the image', async () => {
    const stateDir = await fs.mkdtemp(join(tmpdir(), 'livemig-disk-agent-'));
    dirs.push(stateDir);
    const args = ['--vm', 'v', '--memory', '16MiB', '--workload', 'disk:wss=1MiB,rate=500,rw=50', '--disk', '64MiB'];
    const [agent, dest] = await Promise.all([fleet.agent({ args: [...args, '--state-dir', stateDir] }), fleet.agent()]);
    const image = join(stateDir, 'disks', 'v.img');

    const [vm] = await fleet.vms(agent);
    expect(vm).toMatchObject({
      name: 'v',
      state: 'running',
      workload: 'disk:wss=1MiB,rate=500,rw=50',
      disk: { sizeBytes: 64 * MiB, image },
    });
    expect(await exists(image)).toBe(true);
    await waitUntil(async () => (await fleet.vms(agent))[0]!.disk!.allocatedBytes > 0, {
      what: 'the guest writes its disk',
    });

    const before = (await fleet.vms(agent))[0]!;
    expect(before.state).toBe('running');
    await waitUntil(async () => (await fleet.vms(agent))[0]!.steps > before.steps, { what: 'v keeps stepping' });
    expect(await fleet.vms(dest)).toEqual([]);

    const destroyed = await fleet.cli(['destroy-vm', '--control', agent.control, '--vm', 'v'], 'admin');
    expect(destroyed).toMatchObject({ code: 0, stdout: 'destroyed v\n' });
    expect(await exists(image)).toBe(false);
    expect(await exists(`${image}.alloc`)).toBe(false);
  });

  it('a bad --disk is bad input: one coded line, exit 2; create-vm --disk boots a VM with one', async () => {
    const stateDir = await fs.mkdtemp(join(tmpdir(), 'livemig-disk-agent-'));
    dirs.push(stateDir);
    const agent = await fleet.agent({ args: ['--state-dir', stateDir] });
    const run = await fleet.cli(
      ['create-vm', '--control', agent.control, '--vm', 'd', '--workload', 'disk', '--disk', '12KB'],
      'admin',
    );
    expect(run.stderr).toMatch(/^livemig: ERR_INVALID_SIZE: --disk: [^\n]+\n$/);
    expect(run.code).toBe(2);
    const created = await fleet.cli(
      [
        'create-vm',
        '--control',
        agent.control,
        '--vm',
        'd',
        '--memory',
        '8MiB',
        '--workload',
        'disk:wss=1MiB',
        '--disk',
        '4MiB',
        '--json',
      ],
      'admin',
    );
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ name: 'd', disk: { sizeBytes: 4 * MiB } });
  });
});
