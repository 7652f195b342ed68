import { afterEach, describe, expect, it } from 'vitest';
import { VmHost } from '@livemig/shared/host';
import { parseVmSpec, ToyVm } from '@livemig/shared/vm';

const spec = parseVmSpec({ memory: '1MiB', init: 'random', workload: 'idle', seed: 3 });
let host: VmHost;

afterEach(async () => {
  await host.removeAll();
});

describe('VmHost', () => {
  it('hosts VMs by name and refuses a taken or malformed name', async () => {
    const states: string[] = [];
    host = new VmHost({ onState: (name, state) => states.push(`${name}:${state}`) });
    await host.create('vm1', spec);
    expect(host.list()).toEqual([expect.objectContaining({ name: 'vm1', state: 'running', memoryBytes: 1 << 20 })]);
    await expect(host.create('vm1', spec)).rejects.toMatchObject({ code: 'ERR_BUSY' });
    expect(() => VmHost.checkName('no spaces')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(states).toEqual(['vm1:running']);
  });

  it('retire() frees a migrated VM but keeps a "migrated" record; the name can come back', async () => {
    host = new VmHost();
    const hosted = await host.create('vm1', spec);
    await host.retire('vm1');
    expect(hosted.vm.status).toBe('destroyed');
    expect(host.list()).toEqual([expect.objectContaining({ name: 'vm1', state: 'migrated' })]);
    expect(() => host.get('vm1')).toThrow(expect.objectContaining({ code: 'ERR_VM_STATE' }));
    expect(host.isFree('vm1')).toBe(true);
    // Migrated back here later: the record gives way to the live VM.
    const back = await ToyVm.boot(spec);
    host.adopt('vm1', back, 'incoming');
    expect(host.list()).toEqual([expect.objectContaining({ name: 'vm1', state: 'incoming' })]);
  });

  it('cont refuses a handed-off VM unless forced, and a paused one resumes', async () => {
    host = new VmHost();
    await host.create('vm1', spec);
    await host.stop('vm1');
    expect(host.cont('vm1').state).toBe('running');
    await host.stop('vm1');
    host.setState('vm1', 'migrated');
    expect(() => host.cont('vm1')).toThrow(expect.objectContaining({ code: 'ERR_VM_STATE' }));
    expect(host.cont('vm1', { force: true }).state).toBe('running');
  });
});
