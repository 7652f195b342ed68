import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DEFAULT_MAX_FRAME_BYTES,
  FrameDecoder,
  HEADER_BYTES,
  MsgType,
  decodeFrames,
  encodeFrame,
  encodePages,
  encodePagesFrom,
  msg,
  type Message,
  type PageSink,
  type PagesMeta,
} from '../../../../shared/src/protocol/index.ts';
import { PAGE_COUNT, PAGE_SIZE, anyMessage, normalise } from './arbitraries.ts';
import { codeOf, rawFrame } from './helpers.ts';

const bytesOf = (m: Message): Buffer => Buffer.concat(encodeFrame(m));
const hello = msg.hello({ agentId: 'src', capabilities: ['postcopy'] });
const vm = {
  name: 'vm',
  memoryBytes: 16 * PAGE_SIZE,
  pageSize: PAGE_SIZE,
  workload: 'idle',
  init: 'zero',
  seed: 1,
  nic: '',
};

/** Split `bytes` at the given cut points (any order, duplicates allowed). */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let last = 0;
  for (const p of points) {
    out.push(bytes.subarray(last, p));
    last = p;
  }
  out.push(bytes.subarray(last));
  return out;
}

describe('FrameDecoder: segmentation', () => {
  it('decodes any split of a valid byte stream identically (1000 cases)', () => {
    fc.assert(
      fc.property(
        fc.array(anyMessage, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (messages, cuts) => {
          const stream = Buffer.concat(messages.map(bytesOf));
          // trackSetup off: a generated Setup would otherwise shrink the VM under later messages.
          const options = { pageCount: PAGE_COUNT, trackSetup: false };
          const whole = decodeFrames(stream, options);
          const decoder = new FrameDecoder(options);
          const pieces: Message[] = [];
          // Each piece is pushed from one reused buffer, overwritten after every push: the
          // decoder must not keep references into it.
          const reused = Buffer.alloc(stream.length);
          for (const piece of split(stream, cuts)) {
            reused.set(piece);
            pieces.push(...decoder.push(reused.subarray(0, piece.length)));
            reused.fill(0xee);
          }
          decoder.end();
          expect(normalise(pieces)).toEqual(normalise(whole));
          expect(normalise(whole)).toEqual(normalise(messages));
          expect(decoder.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('decodes byte by byte', () => {
    const stream = Buffer.concat([bytesOf(hello), bytesOf(msg.heartbeat(7))]);
    const decoder = new FrameDecoder();
    const out: Message[] = [];
    for (let i = 0; i < stream.length; i++) out.push(...decoder.push(stream.subarray(i, i + 1)));
    expect(out).toEqual([hello, msg.heartbeat(7)]);
  });
});

/** A sink writing into `memory`, recording calls. */
function memorySink(memory: Uint8Array): PageSink & { calls: string[] } {
  let pages: Uint32Array = new Uint32Array(0);
  const sink = {
    calls: [] as string[],
    pagesBegin(meta: PagesMeta) {
      pages = meta.pages;
      sink.calls.push(`begin ${meta.pages.length}`);
      for (let i = 0; i < meta.kinds.length; i++) {
        if (meta.kinds[i] === 1) memory.fill(0, pages[i]! * PAGE_SIZE, (pages[i]! + 1) * PAGE_SIZE);
      }
    },
    pageBytes(index: number, offset: number, bytes: Uint8Array) {
      memory.set(bytes, pages[index]! * PAGE_SIZE + offset);
    },
    pagesEnd(meta: PagesMeta) {
      sink.calls.push(`end ${meta.pages.length}`);
    },
  };
  return sink;
}

describe('FrameDecoder: PageSink', () => {
  it('streams raw pages into memory (any split), zero pages get no bytes, and no Pages message is returned', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 30 }), (cuts) => {
        const source = new Uint8Array(8 * PAGE_SIZE);
        for (let i = 0; i < source.length; i++) source[i] = (i * 7 + (i >> 12)) & 0xff;
        const pages = new Uint32Array([5, 2, 7, 0]);
        const kinds = new Uint8Array([0, 1, 0, 0]);
        const views = [5, 7, 0].map((p) => source.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE));
        const stream = Buffer.concat([
          ...encodePages({ round: 1, pages, kinds }, views),
          bytesOf(msg.roundEnd({ round: 1, pages: 4, bytes: 3 * PAGE_SIZE })),
        ]);
        const memory = new Uint8Array(8 * PAGE_SIZE).fill(0x55);
        const sink = memorySink(memory);
        const decoder = new FrameDecoder({ sink, pageCount: 8 });
        const order: string[] = [];
        for (const piece of split(stream, cuts)) {
          decoder.feed(Buffer.from(piece), (m) => order.push(`msg ${m.type}`));
        }
        decoder.end();
        const page = (m: Uint8Array, p: number) => Buffer.from(m.buffer, p * PAGE_SIZE, PAGE_SIZE);
        for (const p of [5, 7, 0]) expect(page(memory, p).equals(page(source, p))).toBe(true);
        expect(memory.subarray(2 * PAGE_SIZE, 3 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
        expect(memory.subarray(PAGE_SIZE, 2 * PAGE_SIZE).every((b) => b === 0x55)).toBe(true);
        expect(sink.calls).toEqual(['begin 4', 'end 4']);
        expect(order).toEqual([`msg ${MsgType.RoundEnd}`]);
      }),
      { numRuns: 300 },
    );
  });

  it('with maxRunPages, one call covers a run of consecutive pages, never crossing a region boundary', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 10 }), (cuts) => {
        const source = new Uint8Array(16 * PAGE_SIZE);
        for (let i = 0; i < source.length; i++) source[i] = (i >> 9) & 0xff;
        // raw pages 2,3,4,5,9,10,11 (page 8 is zero); regions of 4 pages: 0-3 | 4-7 | 8-11
        const pages = new Uint32Array([2, 3, 4, 5, 8, 9, 10, 11]);
        const kinds = new Uint8Array([0, 0, 0, 0, 1, 0, 0, 0]);
        const views = [2, 3, 4, 5, 9, 10, 11].map((p) => source.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE));
        const stream = Buffer.concat(encodePages({ round: 0, pages, kinds }, views));
        const memory = new Uint8Array(16 * PAGE_SIZE);
        const calls: [number, number, number][] = [];
        let meta: PagesMeta | undefined;
        const sink: PageSink = {
          maxRunPages: 4,
          pagesBegin: (m) => (meta = m),
          pageBytes: (index, offset, bytes) => {
            calls.push([index, offset, bytes.length]);
            memory.set(bytes, meta!.pages[index]! * PAGE_SIZE + offset);
          },
          pagesEnd: () => {},
        };
        const decoder = new FrameDecoder({ sink });
        for (const piece of split(stream, cuts)) decoder.push(piece);
        for (const p of [2, 3, 4, 5, 9, 10, 11]) {
          expect(
            Buffer.from(memory.buffer, p * PAGE_SIZE, PAGE_SIZE).equals(
              Buffer.from(source.buffer, p * PAGE_SIZE, PAGE_SIZE),
            ),
          ).toBe(true);
        }
        for (const [index, offset, length] of calls) {
          const firstPage = pages[index]!;
          const lastPage = firstPage + Math.ceil((offset + length) / PAGE_SIZE) - 1;
          expect(Math.floor(firstPage / 4)).toBe(Math.floor(lastPage / 4)); // same region
          for (let p = firstPage; p <= lastPage; p++) expect([...pages]).toContain(p);
        }
        if (cuts.length === 0) {
          // unsplit: runs 2-3 | 4-5 (region boundary at 4) | 9-11 (zero page 8 not in the payload)
          expect(calls.map(([i, , len]) => [pages[i], len / PAGE_SIZE])).toEqual([
            [2, 2],
            [4, 2],
            [9, 3],
          ]);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('readTarget/consumedInPlace: runs of pages land in the memory the sink offers, the rest via pageBytes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 50 }),
        fc.nat({ max: 3 }),
        (reads, minPages) => {
          const source = new Uint8Array(32 * PAGE_SIZE);
          for (let i = 0; i < source.length; i++) source[i] = (i * 13 + (i >> 12)) & 0xff;
          // runs: 0-7 | 9 | 12-13 (page 11 zero) | 20-31
          const pages = Uint32Array.from([
            0,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            9,
            11,
            12,
            13,
            ...Array.from({ length: 12 }, (_, i) => 20 + i),
          ]);
          const kinds = Uint8Array.from(pages, (p) => (p === 11 ? 1 : 0));
          const stream = Buffer.concat([
            ...encodePagesFrom({ round: 0, pages, kinds }, source),
            bytesOf(msg.roundEnd({ round: 0, pages: pages.length, bytes: 0 })),
          ]);
          const memory = new Uint8Array(32 * PAGE_SIZE);
          let meta: PagesMeta | undefined;
          let copied = 0;
          let inPlace = 0;
          const sink: PageSink = {
            maxRunPages: 1024,
            pagesBegin: (m) => (meta = m),
            pageBytes: (index, offset, bytes) => {
              copied += bytes.length;
              memory.set(bytes, meta!.pages[index]! * PAGE_SIZE + offset);
            },
            pageTarget: (index, offset, length) => {
              const start = meta!.pages[index]! * PAGE_SIZE + offset;
              return memory.subarray(start, start + length);
            },
            pagesEnd: () => {},
          };
          const decoder = new FrameDecoder({ sink });
          const got: Message[] = [];
          const scratch = new Uint8Array(20_000);
          let pos = 0;
          // Emulate a socket: each "read" fills the buffer the decoder asked for, up to n bytes.
          for (let r = 0; pos < stream.length; r++) {
            const n = reads[r % reads.length]!;
            const target = decoder.readTarget(minPages * PAGE_SIZE + 1);
            const into = target ?? scratch;
            const len = Math.min(n, into.length, stream.length - pos);
            into.set(stream.subarray(pos, pos + len));
            pos += len;
            if (target) {
              inPlace += len;
              decoder.consumedInPlace(len, (m) => got.push(m));
            } else {
              decoder.feed(scratch, (m) => got.push(m), len);
              scratch.fill(0xee);
            }
          }
          decoder.end();
          const page = (m: Uint8Array, p: number) => Buffer.from(m.buffer, p * PAGE_SIZE, PAGE_SIZE);
          for (const p of pages) {
            if (p === 11) expect(page(memory, p).every((b) => b === 0)).toBe(true);
            else expect(page(memory, p).equals(page(source, p))).toBe(true);
          }
          expect(copied + inPlace).toBe(23 * PAGE_SIZE);
          expect(inPlace).toBeGreaterThan(0);
          expect(got.map((m) => m.type)).toEqual([MsgType.RoundEnd]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('consumedInPlace without a matching readTarget is an internal error', () => {
    const decoder = new FrameDecoder();
    expect(codeOf(() => decoder.consumedInPlace(10, () => {}))).toBe('ERR_INTERNAL');
  });

  it('readTarget: a payload decoded whole (DiskBlocks) is read in place, in pieces, and arrives intact', () => {
    const data = new Uint8Array(3 * 4096).map((_, i) => (i * 7) & 0xff);
    const frame = bytesOf(msg.diskBlocks({ blocks: [4, 5, 9], data }));
    const decoder = new FrameDecoder();
    const out: Message[] = [];
    const payloadAt = frame.length - data.length;
    decoder.feed(frame.subarray(0, payloadAt + 100), (m) => out.push(m)); // header, metadata, the first bytes
    let at = payloadAt + 100;
    let inPlace = 0;
    while (at < frame.length) {
      const target = decoder.readTarget(1);
      expect(target).toBeDefined();
      const n = Math.min(target!.length, 5000, frame.length - at);
      target!.set(frame.subarray(at, at + n));
      decoder.consumedInPlace(n, (m) => out.push(m));
      at += n;
      inPlace += n;
    }
    expect(inPlace).toBe(data.length - 100);
    expect(out).toHaveLength(1);
    const got = out[0] as Extract<Message, { type: MsgType.DiskBlocks }>;
    expect([...got.blocks]).toEqual([4, 5, 9]);
    expect(Buffer.from(got.data).equals(Buffer.from(data))).toBe(true);
    expect(decoder.readTarget(1)).toBeUndefined(); // between frames: nothing to read in place
  });

  it('calls the sink in stream order with the messages around it (feed)', () => {
    const events: string[] = [];
    const sink: PageSink = {
      pagesBegin: () => events.push('begin'),
      pageBytes: () => events.push('bytes'),
      pagesEnd: () => events.push('end'),
    };
    const stream = Buffer.concat([
      bytesOf(msg.heartbeat(1)),
      ...encodePages({ round: 0, pages: new Uint32Array([1]), kinds: new Uint8Array([0]) }, [
        new Uint8Array(PAGE_SIZE),
      ]),
      bytesOf(msg.heartbeat(2)),
    ]);
    new FrameDecoder({ sink }).feed(stream, (m) => events.push(`hb ${(m as { seq: number }).seq}`));
    expect(events).toEqual(['hb 1', 'begin', 'bytes', 'end', 'hb 2']);
  });

  it('a batch of only zero pages calls begin and end with no bytes', () => {
    const sink = memorySink(new Uint8Array(4 * PAGE_SIZE));
    const stream = Buffer.concat(
      encodePages({ round: 0, pages: new Uint32Array([0, 3]), kinds: new Uint8Array([1, 1]) }, []),
    );
    expect(stream.length).toBeLessThan(100);
    new FrameDecoder({ sink }).push(stream);
    expect(sink.calls).toEqual(['begin 2', 'end 2']);
  });

  it('without a sink, Pages arrive with their bytes assembled in data', () => {
    const data = new Uint8Array(2 * PAGE_SIZE).fill(9);
    const [m] = decodeFrames(bytesOf(msg.pages({ round: 0, pages: [1, 2, 3], kinds: [0, 1, 0], data })));
    expect(m!.type).toBe(MsgType.Pages);
    expect((m as { data: Uint8Array }).data).toEqual(data);
  });

  it('adopts page size and count from a Setup, then range-checks Pages against it', () => {
    const decoder = new FrameDecoder();
    decoder.push(bytesOf(msg.setup({ migrationId: 'm', mode: 'precopy', vm })));
    expect(decoder.geometry).toEqual({ pageSize: PAGE_SIZE, pageCount: 16 });
    const frame = bytesOf(msg.pages({ round: 0, pages: [16], kinds: [1] }));
    expect(codeOf(() => decoder.push(frame))).toBe('ERR_PAGE_OUT_OF_RANGE');
  });
});

describe('FrameDecoder: one negative test per rejection path', () => {
  const decode = (bytes: Uint8Array, options?: ConstructorParameters<typeof FrameDecoder>[0]) => () =>
    decodeFrames(bytes, options);

  it('ERR_BAD_MAGIC: a stream that does not start with "LM"', () => {
    expect(codeOf(decode(Buffer.from('GET / HTTP/1.1\r\n\r\n')))).toBe('ERR_BAD_MAGIC');
    expect(codeOf(decode(rawFrame({ type: MsgType.Hello, magic: [0x4c, 0x4e] })))).toBe('ERR_BAD_MAGIC');
  });

  it('ERR_PROTOCOL_VERSION: a frame of a version not supported (a version-2 peer)', () => {
    const frame = rawFrame({
      type: MsgType.Hello,
      version: 2,
      meta: { versions: [2], agentId: 'x', capabilities: [] },
    });
    expect(codeOf(decode(frame))).toBe('ERR_PROTOCOL_VERSION');
    expect(codeOf(decode(rawFrame({ type: MsgType.Hello, version: 0 })))).toBe('ERR_PROTOCOL_VERSION');
  });

  it('ERR_UNKNOWN_MESSAGE: type 0 (Invalid) and an unassigned type', () => {
    expect(codeOf(decode(rawFrame({ type: 0 })))).toBe('ERR_UNKNOWN_MESSAGE');
    expect(codeOf(decode(rawFrame({ type: 99 })))).toBe('ERR_UNKNOWN_MESSAGE');
  });

  it('ERR_BAD_METADATA: unknown header flag bits', () => {
    expect(codeOf(decode(rawFrame({ type: MsgType.Handoff, flags: 0x0100 })))).toBe('ERR_BAD_METADATA');
  });

  it('ERR_FRAME_TOO_LARGE: rejected from the 14-byte header alone, before buffering', () => {
    const decoder = new FrameDecoder();
    const header = rawFrame({ type: MsgType.Pages, payloadLen: DEFAULT_MAX_FRAME_BYTES }).subarray(0, HEADER_BYTES);
    expect(codeOf(() => decoder.push(header))).toBe('ERR_FRAME_TOO_LARGE');
    expect(decoder.bufferedBytes).toBe(0);
    const small = new FrameDecoder({ maxFrameBytes: 1024 });
    const header2 = rawFrame({ type: MsgType.CpuState, payloadLen: 2000 }).subarray(0, HEADER_BYTES);
    expect(codeOf(() => small.push(header2))).toBe('ERR_FRAME_TOO_LARGE');
  });

  it('ERR_FRAME_TOO_LARGE: metadata over maxMetaBytes', () => {
    const frame = rawFrame({ type: MsgType.Cancel, meta: { reason: 'x'.repeat(200) } });
    expect(codeOf(decode(frame, { maxMetaBytes: 100 }))).toBe('ERR_FRAME_TOO_LARGE');
  });

  it('ERR_BAD_METADATA: metadata that is not msgpack', () => {
    expect(codeOf(decode(rawFrame({ type: MsgType.Cancel, meta: new Uint8Array([0xc1]) })))).toBe('ERR_BAD_METADATA');
    // a str8 header announcing more bytes than the metadata holds
    expect(codeOf(decode(rawFrame({ type: MsgType.Cancel, meta: new Uint8Array([0xd9, 50, 65]) })))).toBe(
      'ERR_BAD_METADATA',
    );
  });

  it('ERR_BAD_METADATA: empty metadata and trailing bytes after the msgpack value', () => {
    expect(codeOf(decode(rawFrame({ type: MsgType.Handoff, meta: new Uint8Array(0) })))).toBe('ERR_BAD_METADATA');
    expect(codeOf(decode(rawFrame({ type: MsgType.Handoff, meta: new Uint8Array([0x80, 0x80]) })))).toBe(
      'ERR_BAD_METADATA',
    );
  });

  it('ERR_BAD_METADATA: metadata not matching the schema (missing, wrong type, not a map, ext value, bad enum)', () => {
    const bad = (type: number, meta: unknown) => codeOf(decode(rawFrame({ type, meta })));
    expect(bad(MsgType.Heartbeat, {})).toBe('ERR_BAD_METADATA');
    expect(bad(MsgType.Heartbeat, { seq: 'one' })).toBe('ERR_BAD_METADATA');
    expect(bad(MsgType.Heartbeat, { seq: -1 })).toBe('ERR_BAD_METADATA');
    expect(bad(MsgType.Heartbeat, [1])).toBe('ERR_BAD_METADATA');
    expect(bad(MsgType.Setup, { migrationId: 'm', mode: 'teleport', vm })).toBe('ERR_BAD_METADATA');
    expect(bad(MsgType.Setup, { migrationId: 'm', mode: 'precopy', vm: { ...vm, pageSize: 3000 } })).toBe(
      'ERR_BAD_METADATA',
    );
    expect(bad(MsgType.Setup, { migrationId: 'm', mode: 'precopy', vm: { ...vm, memoryBytes: 5000 } })).toBe(
      'ERR_BAD_METADATA',
    );
    expect(bad(MsgType.Hello, { versions: [], agentId: 'a', capabilities: [] })).toBe('ERR_BAD_METADATA');
    expect(bad(MsgType.DeviceState, { state: new Date(0) })).toBe('ERR_BAD_METADATA');
    // msgpack ext type 0x0d (a Date in msgpack-lite's preset codec) must not be revived
    const ext = new Uint8Array([0x81, 0xa5, ...Buffer.from('state'), 0xd4, 0x0d, 0x00]);
    expect(codeOf(decode(rawFrame({ type: MsgType.DeviceState, meta: ext })))).toBe('ERR_BAD_METADATA');
  });

  it('ERR_BAD_METADATA: a __proto__ key cannot supply a missing field', () => {
    // {"__proto__": {"seq": 1}} — msgpack-lite assigns it as the prototype
    const meta = new Uint8Array([0x81, 0xa9, ...Buffer.from('__proto__'), 0x81, 0xa3, ...Buffer.from('seq'), 0x01]);
    expect(codeOf(decode(rawFrame({ type: MsgType.Heartbeat, meta })))).toBe('ERR_BAD_METADATA');
  });

  it('ERR_BAD_METADATA: Pages with a bad kind, mismatched kinds length, or a ragged page list', () => {
    const pagesMeta = (pages: Buffer, kinds: Buffer) => ({ round: 0, requestId: 0, pages, kinds });
    const u32 = (a: number[]) => Buffer.from(new Uint32Array(a).buffer);
    expect(codeOf(decode(rawFrame({ type: MsgType.Pages, meta: pagesMeta(u32([1]), Buffer.from([7])) })))).toBe(
      'ERR_BAD_METADATA',
    );
    expect(codeOf(decode(rawFrame({ type: MsgType.Pages, meta: pagesMeta(u32([1, 2]), Buffer.from([1])) })))).toBe(
      'ERR_BAD_METADATA',
    );
    expect(
      codeOf(decode(rawFrame({ type: MsgType.Pages, meta: pagesMeta(Buffer.from([1, 2, 3]), Buffer.from([])) }))),
    ).toBe('ERR_BAD_METADATA');
  });

  it('ERR_BAD_METADATA: PageRequest with id 0 or no pages', () => {
    expect(codeOf(decode(bytesOf(msg.pageRequest(0, [1]))))).toBe('ERR_BAD_METADATA');
    expect(codeOf(decode(bytesOf(msg.pageRequest(1, []))))).toBe('ERR_BAD_METADATA');
  });

  it('ERR_BAD_PAYLOAD: payload on a message that has none, and an empty CpuState', () => {
    expect(codeOf(decode(rawFrame({ type: MsgType.Handoff, payload: new Uint8Array(3) })))).toBe('ERR_BAD_PAYLOAD');
    expect(codeOf(decode(rawFrame({ type: MsgType.CpuState, meta: { steps: 1 } })))).toBe('ERR_BAD_PAYLOAD');
  });

  it('ERR_BAD_PAYLOAD: Pages payload not whole pages, or not rawCount × pageSize', () => {
    const meta = {
      round: 0,
      requestId: 0,
      pages: Buffer.from(new Uint32Array([1, 2]).buffer),
      kinds: Buffer.from([0, 1]),
    };
    expect(codeOf(decode(rawFrame({ type: MsgType.Pages, meta, payload: new Uint8Array(100) })))).toBe(
      'ERR_BAD_PAYLOAD',
    );
    expect(codeOf(decode(rawFrame({ type: MsgType.Pages, meta, payload: new Uint8Array(2 * PAGE_SIZE) })))).toBe(
      'ERR_BAD_PAYLOAD',
    );
  });

  it('ERR_BAD_PAYLOAD: Setup bitmap of the wrong size', () => {
    const frame = rawFrame({
      type: MsgType.Setup,
      meta: { migrationId: 'm', mode: 'precopy', vm, ticket: '' },
      payload: new Uint8Array(3),
    });
    expect(codeOf(decode(frame))).toBe('ERR_BAD_PAYLOAD');
  });

  it('ERR_PAGE_OUT_OF_RANGE: page numbers at or past pageCount in Pages and PageRequest', () => {
    expect(codeOf(decode(bytesOf(msg.pages({ round: 0, pages: [3, 8], kinds: [1, 1] })), { pageCount: 8 }))).toBe(
      'ERR_PAGE_OUT_OF_RANGE',
    );
    expect(codeOf(decode(bytesOf(msg.pageRequest(1, [0xffff_ffff])), { pageCount: 8 }))).toBe('ERR_PAGE_OUT_OF_RANGE');
  });

  it('ERR_BLOCK_OUT_OF_RANGE: block numbers at or past the disk Setup announced, in DiskBlocks and DiskRequest', () => {
    const vm = { name: 'v', memoryBytes: 1 << 20, pageSize: 4096, workload: 'disk', init: 'zero', seed: 1, nic: '' };
    const setup = bytesOf(
      msg.setup({ migrationId: 'm', mode: 'precopy', vm, disk: { sizeBytes: 1 << 20, storage: 'copy' } }),
    );
    const request = bytesOf(msg.diskRequest(1, [256])); // the disk has blocks 0..255
    expect(codeOf(decode(Buffer.concat([setup, request])))).toBe('ERR_BLOCK_OUT_OF_RANGE');
    const blocks = bytesOf(msg.diskBlocks({ blocks: [255, 300], data: new Uint8Array(2 * 4096) }));
    expect(codeOf(decode(Buffer.concat([setup, blocks])))).toBe('ERR_BLOCK_OUT_OF_RANGE');
    expect(decode(Buffer.concat([setup, bytesOf(msg.diskRequest(1, [255]))]))).not.toThrow();
  });

  it('ERR_TRUNCATED: the stream ends inside the header, the metadata or the payload', () => {
    const frame = Buffer.concat(encodeFrame(msg.cpuState(1, new Uint8Array(64))));
    for (const cut of [1, HEADER_BYTES - 1, HEADER_BYTES + 1, frame.length - 1]) {
      expect(codeOf(decode(frame.subarray(0, cut)))).toBe('ERR_TRUNCATED');
    }
    expect(() => decodeFrames(frame)).not.toThrow();
  });

  it('ERR_UNEXPECTED_MESSAGE: a message travelling the wrong direction for the role', () => {
    expect(codeOf(decode(bytesOf(msg.pageRequest(1, [1])), { role: 'dest' }))).toBe('ERR_UNEXPECTED_MESSAGE');
    expect(codeOf(decode(bytesOf(hello), { role: 'source' }))).toBe('ERR_UNEXPECTED_MESSAGE');
    expect(decodeFrames(bytesOf(hello), { role: 'dest' })).toHaveLength(1);
  });

  it('ERR_INVALID_ARGUMENT: invalid options', () => {
    expect(codeOf(() => new FrameDecoder({ maxFrameBytes: 10 }))).toBe('ERR_INVALID_ARGUMENT');
    expect(codeOf(() => new FrameDecoder({ maxFrameBytes: 1000, maxMetaBytes: 2000 }))).toBe('ERR_INVALID_ARGUMENT');
    expect(codeOf(() => new FrameDecoder({ pageSize: 4000 }))).toBe('ERR_INVALID_ARGUMENT');
    expect(codeOf(() => new FrameDecoder({ pageCount: -1 }))).toBe('ERR_INVALID_ARGUMENT');
    expect(codeOf(() => new FrameDecoder({ versions: [] }))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('the first error sticks: later pushes and end() rethrow it', () => {
    const decoder = new FrameDecoder();
    expect(codeOf(() => decoder.push(Buffer.from('GET / HTTP/1.1\r\n')))).toBe('ERR_BAD_MAGIC');
    expect(codeOf(() => decoder.push(bytesOf(hello)))).toBe('ERR_BAD_MAGIC');
    expect(codeOf(() => decoder.end())).toBe('ERR_BAD_MAGIC');
    expect(decoder.error?.code).toBe('ERR_BAD_MAGIC');
  });

  it('an exception from the message callback or sink becomes the decoder error (ERR_INTERNAL if not a MigrationError)', () => {
    const decoder = new FrameDecoder();
    expect(
      codeOf(() =>
        decoder.feed(bytesOf(hello), () => {
          throw new TypeError('listener bug');
        }),
      ),
    ).toBe('ERR_INTERNAL');
  });
});
