import { describe, expect, it } from 'vitest';
import { parseVmSpec, resolveVmSpec } from '../../../../shared/src/vm/vm-spec.ts';
import { formatSizeSpec, parseWorkloadSpec, workloadHelp } from '../../../../shared/src/vm/workload-spec.ts';
import { WORKLOADS } from '../../../../shared/src/vm/workloads/index.ts';
import { DISK_BYTES_PARAM } from '../../../../shared/src/vm/workloads/types.ts';

const MiB = 1024 * 1024;
const code = (c: string) => expect.objectContaining({ code: c });

describe('parseWorkloadSpec', () => {
  it('canonicalises: every parameter, registry order, exact binary sizes', () => {
    expect(parseWorkloadSpec('hotset:rate=5,wss=65536KiB', 256 * MiB).canonical).toBe('hotset:wss=64MiB,rate=5');
    expect(parseWorkloadSpec(' Uniform ', 64 * MiB).canonical).toBe('uniform:rate=10000');
    expect(parseWorkloadSpec('ab', 64 * MiB).canonical).toBe('ab:rate=0');
    expect(parseWorkloadSpec('idle', 64 * MiB).canonical).toBe('idle:hz=1000');
  });

  it('defaults the working set to min(64MiB, memory/4)', () => {
    expect(parseWorkloadSpec('hotset', 8 * MiB).params.wss).toBe(2 * MiB);
    expect(parseWorkloadSpec('hotset', 1024 * MiB).params.wss).toBe(64 * MiB);
  });

  it('round-trips every canonical spec', () => {
    for (const w of WORKLOADS) {
      const canonical = parseWorkloadSpec(w.name, 64 * MiB).canonical;
      expect(parseWorkloadSpec(canonical, 64 * MiB).canonical).toBe(canonical);
    }
  });

  it.each([
    ['unknown workload', 'fast'],
    ['unknown parameter', 'uniform:speed=3'],
    ['missing value', 'uniform:rate'],
    ['negative rate', 'uniform:rate=-1'],
    ['fractional rate', 'uniform:rate=1.5'],
    ['bad size', 'hotset:wss=lots'],
    ['wss larger than memory', 'hotset:wss=128MiB'],
    ['wss not whole pages', 'hotset:wss=5000'],
    ['parameter twice', 'sweep:rate=1,rate=2'],
  ])('rejects %s with ERR_INVALID_WORKLOAD', (_name, spec) => {
    expect(() => parseWorkloadSpec(spec, 64 * MiB)).toThrow(code('ERR_INVALID_WORKLOAD'));
  });

  it('names the known workloads in the error', () => {
    expect(() => parseWorkloadSpec('nope', MiB)).toThrow(/idle.*uniform.*hotset.*sweep.*ab/);
  });

  it('help lists every workload and parameter', () => {
    const help = workloadHelp();
    for (const w of WORKLOADS) {
      expect(help).toContain(w.name);
      for (const p of w.params) expect(help).toContain(`${p.name}=`);
    }
  });

  it('formats sizes in the largest exact unit', () => {
    expect(formatSizeSpec(64 * MiB)).toBe('64MiB');
    expect(formatSizeSpec(1024 * MiB)).toBe('1GiB');
    expect(formatSizeSpec(1536 * 1024)).toBe('1536KiB');
    expect(formatSizeSpec(4097)).toBe('4097');
  });
});

describe('parseVmSpec', () => {
  it('a kv VM has a NIC address, canonicalised', () => {
    expect(parseVmSpec({ memory: '4MiB', workload: 'kv:keys=1024', nic: ' 127.000.0.1:07700 ' })).toMatchObject({
      workload: 'kv:keys=1024',
      nic: '127.0.0.1:7700',
    });
  });

  it('validates and canonicalises', () => {
    expect(parseVmSpec({ memory: '64MiB', init: 'MIXED:0.50', workload: 'hotset:wss=16MiB', seed: 7 })).toEqual({
      memoryBytes: 64 * MiB,
      init: 'mixed:0.5',
      workload: 'hotset:wss=16MiB,rate=20000',
      seed: 7,
      nic: null,
      disk: null,
    });
    expect(parseVmSpec({ memory: 4 * MiB })).toEqual({
      memoryBytes: 4 * MiB,
      init: 'zero',
      workload: 'idle:hz=1000',
      seed: 1,
      nic: null,
      disk: null,
    });
  });

  it('a disk VM has a disk size in bytes', () => {
    expect(parseVmSpec({ memory: '4MiB', workload: 'disk:wss=1MiB,rate=0,rw=30', disk: '64MiB' })).toMatchObject({
      workload: 'disk:wss=1MiB,rate=0,rw=30',
      disk: 64 * MiB,
    });
    expect(parseVmSpec({ memory: '4MiB', workload: 'disk:wss=1MiB', disk: 4 * MiB }).disk).toBe(4 * MiB);
  });

  it('kv takes a disk optionally: the spec string is the same either way, the boot sees the disk', () => {
    const nic = '127.0.0.1:7700';
    const without = parseVmSpec({ memory: '4MiB', workload: 'kv:keys=1024', nic });
    const withDisk = parseVmSpec({ memory: '4MiB', workload: 'kv:keys=1024', nic, disk: '16MiB' });
    expect(without).toMatchObject({ workload: 'kv:keys=1024', disk: null });
    expect(withDisk).toMatchObject({ workload: 'kv:keys=1024', disk: 16 * MiB });
    expect(resolveVmSpec(without).workload.params).toEqual({ keys: 1024 });
    expect(resolveVmSpec(withDisk).workload.params).toEqual({ keys: 1024, [DISK_BYTES_PARAM]: 16 * MiB });
    expect(resolveVmSpec(withDisk).workload.canonical).toBe('kv:keys=1024');
    // The disk workload needs one; the rest refuse one.
    expect(WORKLOADS.filter((w) => w.drivesDisk).map((w) => [w.name, w.drivesDisk])).toEqual([
      ['kv', 'optional'],
      ['disk', true],
    ]);
  });

  it('says which workloads drive a disk when one is given to a workload that does not', () => {
    expect(() => parseVmSpec({ memory: '4MiB', workload: 'uniform', disk: '64MiB' })).toThrow(
      '--disk needs a workload that drives the disk (kv may have one, disk needs one); uniform would scribble over its ring',
    );
  });

  it('kv with a disk needs room for the disk ring and its log buffer before its table', () => {
    // 1 MiB = 256 pages: the largest table beside the NIC alone leaves no room for 4 more pages.
    const keys = (256 - 9) * 256;
    const input = { memory: '1MiB', workload: `kv:keys=${keys}`, nic: '127.0.0.1:7700' };
    expect(parseVmSpec(input).workload).toBe(`kv:keys=${keys}`);
    expect(() => parseVmSpec({ ...input, disk: '1MiB' })).toThrow(code('ERR_INVALID_WORKLOAD'));
    expect(() => parseVmSpec({ ...input, disk: '1MiB' })).toThrow(
      /9 NIC pages \+ 3 disk ring pages \+ 1 log buffer page \+ 247 table pages\) with a disk/,
    );
    const fits = (256 - 13) * 256;
    expect(parseVmSpec({ ...input, workload: `kv:keys=${fits}`, disk: '1MiB' }).disk).toBe(MiB);
  });

  it.each([
    ['below 1 MiB', { memory: '512KiB' }, 'ERR_INVALID_SIZE'],
    ['above 16 GiB', { memory: '17GiB' }, 'ERR_INVALID_SIZE'],
    ['not whole pages', { memory: '3000KB' }, 'ERR_INVALID_SIZE'],
    ['unparseable size', { memory: 'big' }, 'ERR_INVALID_SIZE'],
    ['bad init', { memory: '4MiB', init: 'mixed:1.5' }, 'ERR_INVALID_INIT'],
    ['unknown init', { memory: '4MiB', init: 'ones' }, 'ERR_INVALID_INIT'],
    ['bad workload', { memory: '4MiB', workload: 'x' }, 'ERR_INVALID_WORKLOAD'],
    ['negative seed', { memory: '4MiB', seed: -1 }, 'ERR_INVALID_ARGUMENT'],
    ['fractional seed', { memory: '4MiB', seed: 1.5 }, 'ERR_INVALID_ARGUMENT'],
    ['seed ≥ 2^32', { memory: '4MiB', seed: 2 ** 32 }, 'ERR_INVALID_ARGUMENT'],
    ['kv without a NIC', { memory: '4MiB', workload: 'kv' }, 'ERR_INVALID_ARGUMENT'],
    ['a NIC with a workload that does not drive it', { memory: '4MiB', nic: '127.0.0.1:7700' }, 'ERR_INVALID_ARGUMENT'],
    ['a NIC address without a port', { memory: '4MiB', workload: 'kv', nic: '127.0.0.1' }, 'ERR_INVALID_ARGUMENT'],
    ['a NIC address with port 0', { memory: '4MiB', workload: 'kv', nic: '127.0.0.1:0' }, 'ERR_INVALID_ARGUMENT'],
    [
      'a NIC address with an octet > 255',
      { memory: '4MiB', workload: 'kv', nic: '10.0.0.256:7700' },
      'ERR_INVALID_ARGUMENT',
    ],
    ['an IPv6 NIC address', { memory: '4MiB', workload: 'kv', nic: '[::1]:7700' }, 'ERR_INVALID_ARGUMENT'],
    ['the disk workload without a disk', { memory: '4MiB', workload: 'disk' }, 'ERR_INVALID_ARGUMENT'],
    ['a disk with a workload that does not drive it', { memory: '4MiB', disk: '64MiB' }, 'ERR_INVALID_ARGUMENT'],
    [
      'kv with a bad disk size',
      { memory: '4MiB', workload: 'kv', nic: '127.0.0.1:7700', disk: '12KiB' },
      'ERR_INVALID_SIZE',
    ],
    ['kv with a disk but no NIC', { memory: '4MiB', workload: 'kv', disk: '16MiB' }, 'ERR_INVALID_ARGUMENT'],
    ['a disk below 1 MiB', { memory: '4MiB', workload: 'disk:wss=4KiB', disk: '512KiB' }, 'ERR_INVALID_SIZE'],
    ['a disk above 1 TiB', { memory: '4MiB', workload: 'disk', disk: '2TiB' }, 'ERR_INVALID_SIZE'],
    ['a disk not whole blocks', { memory: '4MiB', workload: 'disk:wss=4KiB', disk: '1000001' }, 'ERR_INVALID_SIZE'],
    ['an unparseable disk size', { memory: '4MiB', workload: 'disk', disk: 'huge' }, 'ERR_INVALID_SIZE'],
    [
      'a working set larger than the disk',
      { memory: '4MiB', workload: 'disk:wss=2MiB', disk: '1MiB' },
      'ERR_INVALID_WORKLOAD',
    ],
    ['a read share above 100%', { memory: '4MiB', workload: 'disk:rw=101', disk: '64MiB' }, 'ERR_INVALID_WORKLOAD'],
  ])('rejects %s', (_name, input, expected) => {
    expect(() => parseVmSpec(input)).toThrow(code(expected));
  });
});
