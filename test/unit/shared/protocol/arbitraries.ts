/**
 * fast-check arbitraries for every protocol message, shared by the protocol tests. Each produces
 * messages through the `msg.*` factories, valid for a VM of PAGE_COUNT pages of PAGE_SIZE bytes.
 */
import fc from 'fast-check';
import {
  ATTACH_CHANNELS,
  MAX_HOST_CONTENT_PAGES,
  MIGRATION_MODES,
  msg,
  QUERY_STATES,
  STORAGE_MODES,
  type Message,
  type SetupVm,
} from '../../../../shared/src/protocol/index.ts';

export const PAGE_SIZE = 4096;
export const PAGE_COUNT = 1024;
/** Blocks of the disk of every Setup that has one (2 MiB), so disk messages fit whatever Setup came first. */
export const DISK_BLOCKS = 512;

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const uint = fc.maxSafeNat();
const num = fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0));
const str = fc.string({ maxLength: 40 });
const pageNumber = fc.integer({ min: 0, max: PAGE_COUNT - 1 });
/** Section digests, as StopCopyEnd, Ready, PostcopyStart and Complete carry them. */
const digests = fc.dictionary(
  fc.constantFrom('ram', 'cpu', 'devices', 'disk'),
  fc.stringMatching(/^[0-9a-f]{16,64}$/),
  { maxKeys: 4 },
);

const setupVm: fc.Arbitrary<SetupVm> = fc.record({
  name: str,
  memoryBytes: fc.integer({ min: 1, max: 64 }).map((n) => n * PAGE_SIZE),
  pageSize: fc.constant(PAGE_SIZE),
  workload: str,
  init: str,
  seed: u32,
  nic: str,
});

/** Plain data as msgpack round-trips it (no undefined, no -0, integers and doubles kept). */
const plainValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0)),
    str,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
      tie('value'),
      { maxKeys: 4 },
    ),
  ),
}));

const pagesMessage = fc
  .array(fc.tuple(pageNumber, fc.constantFrom(0, 1), fc.uint8Array({ minLength: 1, maxLength: 1 })), {
    minLength: 0,
    maxLength: 12,
  })
  .chain((entries) =>
    fc.record({ round: u32, requestId: u32 }).map(({ round, requestId }) => {
      const raw = entries.filter(([, kind]) => kind === 0);
      const data = new Uint8Array(raw.length * PAGE_SIZE);
      raw.forEach(([, , fill], i) => data.fill(fill[0]!, i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
      return msg.pages({
        round,
        requestId,
        pages: entries.map(([p]) => p),
        kinds: entries.map(([, k]) => k),
        data,
      });
    }),
  );

/** A bitmap with one bit per page of the PAGE_COUNT-page VM. */
const pageBitmap = fc.uint8Array({ minLength: PAGE_COUNT / 8, maxLength: PAGE_COUNT / 8 });
const blockNumber = fc.integer({ min: 0, max: DISK_BLOCKS - 1 });
const blockBitmap = fc.uint8Array({ minLength: DISK_BLOCKS / 8, maxLength: DISK_BLOCKS / 8 });

/** One arbitrary per message type, keyed by name. */
export const messageArbitraries: Record<string, fc.Arbitrary<Message>> = {
  Hello: fc
    .record({
      versions: fc.array(fc.integer({ min: 1, max: 255 }), { minLength: 1, maxLength: 4 }),
      agentId: str,
      capabilities: fc.array(str, { maxLength: 5 }),
    })
    .map((f) => msg.hello(f)),
  Welcome: fc
    .record({ version: fc.integer({ min: 1, max: 255 }), agentId: str, capabilities: fc.array(str, { maxLength: 5 }) })
    .map((f) => msg.welcome(f)),
  Setup: fc
    .record({
      migrationId: str,
      mode: fc.constantFrom(...MIGRATION_MODES),
      vm: setupVm,
      ticket: str,
      withBitmap: fc.boolean(),
      storage: fc.option(fc.constantFrom(...STORAGE_MODES), { nil: undefined }),
      hostContent: fc.option(fc.integer({ min: 1, max: MAX_HOST_CONTENT_PAGES }), { nil: undefined }),
    })
    .map(({ withBitmap, storage, hostContent, ...f }) => {
      const pages = f.vm.memoryBytes / f.vm.pageSize;
      const disk = storage ? { disk: { sizeBytes: DISK_BLOCKS * 4096, storage } } : {};
      return msg.setup({
        ...f,
        ...disk,
        ...(hostContent !== undefined ? { hostContent } : {}),
        ...(withBitmap ? { bitmap: new Uint8Array(Math.ceil(pages / 8)).fill(0xa5) } : {}),
      });
    }),
  SetupDone: fc
    .tuple(num, fc.option(fc.tuple(fc.nat(8), fc.nat({ max: 1000 })), { nil: undefined }))
    .map(([ms, host]) =>
      // Host content offered: 32-byte hashes (none is a zero-length payload, read as absent).
      msg.setupDone(ms, host && { hashes: new Uint8Array(host[0] * 32).fill(0x5c), ms: host[1] }),
    ),
  Pages: pagesMessage,
  RoundEnd: fc.record({ round: u32, pages: uint, bytes: uint }).map((f) => msg.roundEnd(f)),
  CpuState: fc
    .tuple(uint, fc.uint8Array({ minLength: 1, maxLength: 256 }))
    .map(([steps, regs]) => msg.cpuState(steps, regs)),
  DeviceState: fc
    .dictionary(
      fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
      plainValue.value,
      { maxKeys: 5 },
    )
    .map((state) => msg.deviceState(state)),
  StopCopyEnd: digests.map((d) => msg.stopCopyEnd(d)),
  Ready: digests.map((d) => msg.ready(d)),
  Handoff: fc.constant(msg.handoff()),
  Resumed: num.map((ms) => msg.resumed(ms)),
  PageRequest: fc
    .tuple(fc.integer({ min: 1, max: 0xffff_ffff }), fc.array(pageNumber, { minLength: 1, maxLength: 16 }))
    .map(([id, pages]) => msg.pageRequest(id, pages)),
  Complete: fc
    .option(fc.record({ faults: fc.nat(), p99: fc.integer({ min: 0, max: 1e6 }).map((us) => us / 1000) }), {
      nil: undefined,
    })
    .chain((stats) => digests.map((d) => msg.complete(stats, d))),
  Cancel: str.map((r) => msg.cancel(r)),
  Error: fc.tuple(str, str).map(([code, text]) => msg.error(code, text)),
  Heartbeat: u32.map((seq) => msg.heartbeat(seq)),
  Attach: fc.tuple(str, fc.constantFrom(...ATTACH_CHANNELS)).map(([id, channel]) => msg.attach(id, channel)),
  PostcopyStart: fc.tuple(pageBitmap, digests).map(([b, d]) => msg.postcopyStart(b, d)),
  Missing: pageBitmap.map((b) => msg.missing(b)),
  RoundAck: u32.map((round) => msg.roundAck(round)),
  Record: fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 512 }), str, str)
    .map(([record, value, certificate]) => msg.record(record, { value, certificate })),
  Countersignature: fc
    .oneof(
      fc.record({ value: str, certificate: str }),
      str.map((refused) => ({ refused })),
    )
    .map((answer) => msg.countersignature(answer)),
  Query: fc.tuple(str, str).map(([migrationId, vm]) => msg.query(migrationId, vm)),
  QueryResult: fc.constantFrom(...QUERY_STATES).map((state) => msg.queryResult(state)),
  DiskBlocks: fc
    .tuple(fc.array(blockNumber, { minLength: 1, maxLength: 4 }), u32, u32)
    .map(([blocks, requestId, ackId]) =>
      msg.diskBlocks({ blocks, requestId, ackId, data: new Uint8Array(blocks.length * 4096).fill(blocks[0]! & 255) }),
    ),
  DiskAck: u32.map((id) => msg.diskAck(id)),
  DiskRequest: fc
    .tuple(fc.integer({ min: 1, max: 0xffff_ffff }), fc.array(blockNumber, { minLength: 1, maxLength: 16 }))
    .map(([id, blocks]) => msg.diskRequest(id, blocks)),
  DiskAbsent: blockBitmap.map((b) => msg.diskAbsent(b)),
  DiskMissing: blockBitmap.map((b) => msg.diskMissing(b)),
  DiskAllocated: blockBitmap.map((b) => msg.diskAllocated(b)),
  DiskPrehashed: fc
    .tuple(u32, fc.constantFrom('done' as const, 'failed' as const))
    .map(([ms, outcome]) => msg.diskPrehashed(ms, outcome)),
  DiskWritten: fc.array(blockNumber, { minLength: 1, maxLength: 16 }).map((blocks) => msg.diskWritten(blocks)),
  FaultOpen: fc.constant(msg.faultOpen()),
  FaultListening: fc
    .option(fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.uint8Array({ minLength: 32, maxLength: 32 })), {
      nil: undefined,
    })
    .map((thread) => msg.faultListening(thread && { port: thread[0], token: Buffer.from(thread[1]).toString('hex') })),
};

/** Any message. */
export const anyMessage: fc.Arbitrary<Message> = fc.oneof(...Object.values(messageArbitraries));

/** Normalise a message for deep equality (typed arrays → plain arrays, Buffers → Uint8Array contents). */
export function normalise(value: unknown): unknown {
  if (value instanceof Uint8Array || value instanceof Uint32Array) return { bytes: [...value] };
  if (Array.isArray(value)) return value.map(normalise);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = normalise((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}
