/**
 * References to host content end to end without sockets: the destination builds its table from
 * another VM's memory and offers the hashes (SetupDone); the source pins them (HostContentRefs)
 * in the index its PageCodecs uses, encodes a batch, and the frames go through a FrameDecoder
 * into the destination's PageApplier — pages with a host content travel as references to it, the
 * destination's memory and digest equal the source's, and the report counts them.
 */
import { describe, expect, it } from 'vitest';
import { PageApplier } from '@livemig/shared/channel';
import { buildHostContent, DedupIndex } from '@livemig/shared/codec';
import {
  encodePages,
  FrameDecoder,
  MAX_HOST_CONTENT_PAGES,
  msg,
  PageKind,
  type PagesBatch,
  type SetupMsg,
} from '@livemig/shared/protocol';
import { GuestMemory, PAGE_SIZE, PageDigestLedger } from '@livemig/shared/vm';
import { HostContentRefs } from '../../../agent-source/src/migration/sections/ram/host-content-refs.ts';
import { PageCodecs } from '../../../agent-source/src/migration/sections/ram/page-codecs.ts';
import { DEFAULT_ENCODING_PARAMS } from '../../../agent-source/src/migration/sections/ram/encoding-policy.ts';

const MiB = 2 ** 20;
const PAGES = MiB / PAGE_SIZE;

/** Content `n` (a library page of the image both VMs were booted from, say). */
function content(n: number): Uint8Array {
  const bytes = new Uint8Array(PAGE_SIZE);
  for (let i = 0; i < PAGE_SIZE; i++) bytes[i] = (i * 31 + n * 7) & 0xff;
  new DataView(bytes.buffer).setUint32(0, n);
  return bytes;
}

function setupOf(mode: SetupMsg['mode']): SetupMsg {
  return msg.setup({
    migrationId: 'm',
    mode,
    vm: { name: 'vm', memoryBytes: MiB, pageSize: PAGE_SIZE, workload: 'idle', init: 'zero', seed: 1, nic: '' },
  });
}

describe('HostContentRefs', () => {
  it('asks for host content in pre-copy and hybrid, not in post-copy (no page goes through the encodings)', () => {
    const refs = new HostContentRefs(new DedupIndex(), { pageCount: PAGES, pageSize: PAGE_SIZE });
    for (const mode of ['precopy', 'hybrid'] as const) {
      const setup = setupOf(mode);
      refs.ask(setup);
      expect(setup.hostContent).toBe(MAX_HOST_CONTENT_PAGES);
    }
    const postcopy = setupOf('postcopy');
    new HostContentRefs(new DedupIndex(), { pageCount: PAGES, pageSize: PAGE_SIZE }).ask(postcopy);
    expect(postcopy.hostContent).toBeUndefined();
  });

  it('takes no more than it asked for, and nothing when it did not ask', () => {
    const hashes = new Uint8Array(3 * 32).fill(7);
    const unasked = new HostContentRefs(new DedupIndex(), { pageCount: PAGES, pageSize: PAGE_SIZE });
    unasked.offered(msg.setupDone(1, { hashes, ms: 1 }));
    expect(unasked.index.host.entries).toBe(0);
    expect(unasked.report()).toBeUndefined();
    // A VM so large that only two references fit u32 page numbers above it.
    const huge = new HostContentRefs(new DedupIndex(), { pageCount: 0x1_0000_0000 - 2, pageSize: PAGE_SIZE });
    const setup = setupOf('precopy');
    huge.ask(setup);
    expect(setup.hostContent).toBe(2);
    huge.offered(msg.setupDone(1, { hashes: new Uint8Array(3 * 32).map((_, i) => i), ms: 1 }));
    expect(huge.report()).toMatchObject({ offered: 2 });
  });

  it('pages with content the destination host holds go as references to it; the destination ends equal to the source', async () => {
    // The destination runs another VM holding contents 0..39; the incoming VM has 0..19 (shared
    // with it) at pages 0..19 and 100..119 of its own (not there) at pages 20..39, and zeros.
    const other = GuestMemory.allocate(MiB);
    for (let n = 0; n < 40; n++) other.writePage(n + 50, content(n));
    const table = buildHostContent([other], PAGE_SIZE, { maxPages: 64, maxScanPages: 4096, timeBudgetMs: 60_000 });
    expect(table.count).toBe(40);

    const source = GuestMemory.allocate(MiB);
    for (let n = 0; n < 20; n++) source.writePage(n, content(n));
    for (let n = 20; n < 40; n++) source.writePage(n, content(n + 80));
    const refs = new HostContentRefs(new DedupIndex(), source);
    const setup = setupOf('precopy');
    refs.ask(setup);
    refs.offered(msg.setupDone(3, { hashes: table.hashes, ms: table.figures.ms }));
    const codecs = new PageCodecs({ delta: null, dedup: { index: refs.index }, compress: null });
    codecs.use({ delta: false, dedup: true, compress: null });

    const dest = GuestMemory.allocate(MiB);
    const applier = new PageApplier();
    applier.attach(dest);
    applier.encodings = { delta: false, dedup: true, compress: false };
    applier.hostContent = table;
    const decoder = new FrameDecoder({ sink: applier, pageCount: PAGES, role: 'dest' });
    const sent = new PageDigestLedger(PAGES);
    const pages = Uint32Array.from({ length: 64 }, (_, i) => i);
    const encoded = await codecs.encode(pages, source, {
      zeroPages: true,
      cacheNew: false,
      onPageSent: (page, bytes) => (bytes ? sent.update(page, bytes) : sent.updateZero(page)),
    });
    const batch: PagesBatch = { round: 0, pages, kinds: encoded.kinds };
    if (encoded.refs) batch.refs = encoded.refs;
    for (const frame of encodePages(batch, encoded.views)) decoder.push(frame);
    await codecs.close();

    expect([...encoded.kinds.subarray(0, 20)].every((k) => k === PageKind.Dedup)).toBe(true);
    expect([...encoded.kinds.subarray(20, 40)].every((k) => k === PageKind.Raw)).toBe(true);
    expect([...encoded.refs!].every((ref) => ref >= PAGES && ref < PAGES + table.count)).toBe(true);
    for (let page = 0; page < PAGES; page++) {
      expect(Buffer.compare(dest.page(page), source.page(page)), `page ${page}`).toBe(0);
    }
    expect(applier.digest()).toBe(sent.digest());
    expect(applier.hostReferences).toBe(20);
    const report = refs.withHost(codecs.report(DEFAULT_ENCODING_PARAMS, []));
    expect(report!.dedup).toMatchObject({
      pages: 20,
      host: { offered: 40, pages: 20, tableBytes: 40 * (PAGE_SIZE + 32) },
    });
  });
});
