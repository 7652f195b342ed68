/**
 * The destination's offer of host content (dedup-host): made from the OTHER VMs this agent hosts
 * (never the VM being built), bounded by half the guest-memory budget still free, nothing from a
 * VM migrated away — and a Setup asking for it without the capability negotiated is refused
 * before anything is reserved.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger, VM_OVERHEAD_BYTES } from '@livemig/shared';
import { PageApplier } from '@livemig/shared/channel';
import { PAGE_HASH_BYTES, pageHash, pageHashOfBytes, type HostContentTable } from '@livemig/shared/codec';
import { VmHost } from '@livemig/shared/host';
import { msg } from '@livemig/shared/protocol';
import { parseVmSpec, ToyVm } from '@livemig/shared/vm';
import { buildIncomingVm } from '../../../agent-dest/src/migration/build-vm.ts';
import { offerHostContent } from '../../../agent-dest/src/migration/host-content.ts';

const MiB = 2 ** 20;
const PAGE = 4096;
const realistic = parseVmSpec({ memory: '16MiB', init: 'realistic', workload: 'idle', seed: 1 });
const charge = (bytes: number): number => bytes + VM_OVERHEAD_BYTES;
let host: VmHost;

afterEach(async () => {
  await host.removeAll();
});

function hashesOf(table: HostContentTable): Set<string> {
  const out = new Set<string>();
  for (let k = 0; k < table.count; k++) {
    out.add(pageHashOfBytes(table.hashes.subarray(k * PAGE_HASH_BYTES, (k + 1) * PAGE_HASH_BYTES)));
  }
  return out;
}

describe('offerHostContent', () => {
  it("offers the other VMs' content seen more than once, not the incoming VM's", async () => {
    host = new VmHost({ maxGuestMemoryBytes: 256 * MiB });
    await host.create('a', realistic);
    const incoming = await ToyVm.createIncoming(parseVmSpec({ memory: '4MiB' }), { postcopy: false });
    host.adopt('incoming', incoming, 'incoming');
    const mine = new Uint8Array(PAGE).fill(0x3c);
    incoming.memory.writePage(3, mine);
    const table = offerHostContent(host, 'incoming', 16_384, PAGE, silentLogger());
    expect(hashesOf(table).has(pageHash(mine))).toBe(false);
    // Exactly the contents a holds at two addresses or more (4096 pages, all scanned; an idle VM
    // does not write): its duplicate pages' pool, not its own text, code or random pages.
    const a = host.get('a').vm.memory;
    const seen = new Map<string, number>();
    for (let page = 0; page < a.pageCount; page++) {
      if (a.isZeroPage(page)) continue;
      const key = pageHash(a.page(page));
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
    const repeated = [...seen].filter(([, n]) => n >= 2).map(([key]) => key);
    expect(repeated.length).toBeGreaterThan(50);
    expect([...hashesOf(table)].sort()).toEqual(repeated.sort());
  });

  it('takes at most half of the guest-memory budget left, and what was asked', async () => {
    host = new VmHost({ maxGuestMemoryBytes: charge(16 * MiB) + 2 * 20 * PAGE });
    await host.create('a', realistic);
    expect(offerHostContent(host, 'incoming', 16_384, PAGE, silentLogger()).count).toBe(20);
    expect(offerHostContent(host, 'incoming', 5, PAGE, silentLogger()).count).toBe(5);
  });

  it('offers nothing from a VM migrated away (only its figures are kept here)', async () => {
    host = new VmHost({ maxGuestMemoryBytes: 256 * MiB });
    await host.create('a', realistic);
    await host.retire('a');
    expect(offerHostContent(host, 'incoming', 16_384, PAGE, silentLogger()).count).toBe(0);
  });
});

describe('Setup asking for host content', () => {
  it('is refused without dedup-host negotiated, before any memory is reserved', async () => {
    host = new VmHost({ maxGuestMemoryBytes: 256 * MiB });
    const setup = msg.setup({
      migrationId: 'm',
      mode: 'precopy',
      vm: { name: 'vm', memoryBytes: 4 * MiB, pageSize: PAGE, workload: 'idle', init: 'zero', seed: 1, nic: '' },
      hostContent: 16_384,
    });
    const components = {
      host,
      applier: new PageApplier(),
      logger: silentLogger(),
      maxMemoryBytes: 64 * MiB,
      setupBitmap: true,
      admit: () => {
        throw new Error('admission must not be reached');
      },
    };
    await expect(buildIncomingVm(setup, { ...components, hostContent: false })).rejects.toMatchObject({
      code: 'ERR_UNEXPECTED_MESSAGE',
      message: expect.stringContaining('dedup-host'),
    });
    expect(host.guestMemory.reservedBytes).toBe(0);
    expect(host.list()).toEqual([]);
  });
});
