/**
 * Every message of the data channel: the `MsgType` numbering (0 reserved, as QEMU's
 * `MIG_CMD_INVALID`), one interface per message, the `Message` union keyed by `type`, the
 * MESSAGE_SPEC table (name, direction, metadata schema, payload rule, semantic checks) that the
 * encoder, the decoder and logs are driven by, and the `msg.*` factories — build messages only
 * through them.
 *
 * A message's fields are split on the wire: everything in its `schema` goes into the msgpack
 * metadata; the one field named by `payload.field` (page bytes, register bytes, a bitmap) goes
 * raw into the frame payload. Wire numbers never change meaning within a protocol version; add
 * new types at the end.
 */
import { MigrationError, type ErrorCode } from '../errors.ts';
import type { ObjectSchema } from './schema.ts';
import { SUPPORTED_VERSIONS } from './version.ts';

/** Message type numbers as they appear in the frame header. */
export const enum MsgType {
  /** Reserved: a frame of type 0 is always rejected. */
  Invalid = 0,
  Hello = 1,
  Welcome = 2,
  Setup = 3,
  SetupDone = 4,
  Pages = 5,
  RoundEnd = 6,
  CpuState = 7,
  DeviceState = 8,
  StopCopyEnd = 9,
  Ready = 10,
  Handoff = 11,
  Resumed = 12,
  PageRequest = 13,
  Complete = 14,
  Cancel = 15,
  Error = 16,
  Heartbeat = 17,
  Attach = 18,
  PostcopyStart = 19,
  Missing = 20,
  RoundAck = 21,
}

/** Highest assigned MsgType. */
export const MAX_MSG_TYPE = MsgType.RoundAck;

/** How a migration moves memory. */
export type MigrationMode = 'precopy' | 'postcopy' | 'hybrid';
export const MIGRATION_MODES: readonly MigrationMode[] = ['precopy', 'postcopy', 'hybrid'];

/** Per-page encoding inside a Pages batch. */
export const enum PageKind {
  /** `pageSize` raw bytes follow in the payload. */
  Raw = 0,
  /** The page is all zero: no bytes travel. */
  Zero = 1,
}
/** Highest defined PageKind (a kind above it is rejected). */
export const MAX_PAGE_KIND = PageKind.Zero;

/** The VM being migrated, as the destination needs to rebuild it. */
export interface VmSpec {
  name: string;
  /** Guest memory size: a positive multiple of `pageSize`. */
  memoryBytes: number;
  /** A power of two in [512, 1 MiB]; 4096 in practice. */
  pageSize: number;
  /** Workload spec, e.g. "hotset:64MiB:20000". */
  workload: string;
  /** Initial memory contents spec, e.g. "zero" | "random" | "mixed:0.5". */
  init: string;
  seed: number;
  /** The VM's NIC address "a.b.c.d:port", or "" for none (the destination prepares to take it). */
  nic: string;
}

/** S→D, first frame: the versions and capabilities the source supports. */
export interface HelloMsg {
  type: MsgType.Hello;
  /** Protocol versions the sender supports, any order. */
  versions: readonly number[];
  agentId: string;
  /** Capability names (see KNOWN_CAPABILITIES); unknown ones are negotiated off. */
  capabilities: readonly string[];
}

/** D→S, answer to Hello: the chosen version and the negotiated (intersected) capabilities. */
export interface WelcomeMsg {
  type: MsgType.Welcome;
  version: number;
  agentId: string;
  capabilities: readonly string[];
}

/** S→D: what is migrating. Payload: optional bitmap, bit n set = page n may be non-zero. */
export interface SetupMsg {
  type: MsgType.Setup;
  migrationId: string;
  mode: MigrationMode;
  vm: VmSpec;
  /**
   * 1 bit per page, LSB first (page n = byte n>>3, bit n&7), exactly ceil(pageCount / 8) bytes;
   * pages whose bit is clear are zero and will never be sent. Absent: no such knowledge.
   */
  bitmap?: Uint8Array;
}

/** D→S: the destination has allocated (and pre-faulted) memory. */
export interface SetupDoneMsg {
  type: MsgType.SetupDone;
  preparedMs: number;
}

/**
 * S→D: a batch of pages. `pages[i]` has encoding `kinds[i]`; the payload holds the raw pages'
 * bytes in batch order, `pageSize` each. Zero pages carry no bytes.
 */
export interface PagesMsg {
  type: MsgType.Pages;
  /** Pre-copy round (0 = first full pass); post-copy pushes use the round they belong to. */
  round: number;
  /** 0 = unsolicited (background push, pre-copy); ≥ 1 = answers PageRequest `id`. */
  requestId: number;
  pages: Uint32Array;
  /** One PageKind per page. */
  kinds: Uint8Array;
  /**
   * The raw pages' bytes, concatenated. Set when the frame was decoded without a PageSink, or
   * when a caller builds a message to encode with `encodeFrame`; absent when a sink took them.
   */
  data?: Uint8Array;
}

/** The fields of a Pages frame without its bytes: what a PageSink is told. */
export type PagesMeta = Omit<PagesMsg, 'data'>;

/** S→D: round `round` is complete. */
export interface RoundEndMsg {
  type: MsgType.RoundEnd;
  round: number;
  /** Pages sent in this round. */
  pages: number;
  /** Page payload bytes sent in this round. */
  bytes: number;
}

/** S→D: vCPU state at the stop point. Payload: the register file bytes. */
export interface CpuStateMsg {
  type: MsgType.CpuState;
  steps: number;
  registers: Uint8Array;
}

/** S→D: device state at the stop point (plain data). */
export interface DeviceStateMsg {
  type: MsgType.DeviceState;
  state: Record<string, unknown>;
}

/** S→D: everything of the stop-and-copy phase has been sent; the source's memory digest. */
export interface StopCopyEndMsg {
  type: MsgType.StopCopyEnd;
  digest: string;
}

/** D→S: memory, CPU and device state loaded; the destination's digest (must equal the source's). */
export interface ReadyMsg {
  type: MsgType.Ready;
  digest: string;
}

/** S→D: ownership passes to the destination (the source will never resume this VM). */
export interface HandoffMsg {
  type: MsgType.Handoff;
}

/** D→S: the VM runs on the destination; time from receiving Handoff to the vCPU running. */
export interface ResumedMsg {
  type: MsgType.Resumed;
  handoffToResumeMs: number;
}

/** D→S, post-copy: the vCPU faulted on these pages. */
export interface PageRequestMsg {
  type: MsgType.PageRequest;
  /** ≥ 1; echoed as `requestId` by the Pages frame(s) answering it. */
  id: number;
  pages: Uint32Array;
}

/**
 * D→S: the migration is complete (post-copy: the destination has every page and the digest
 * matched). `stats` carries what only the destination measured (faults, fault latency, vCPU
 * blocked time, guest progress), plain data for the report.
 */
export interface CompleteMsg {
  type: MsgType.Complete;
  stats: Record<string, unknown>;
}

/** S→D: the operator cancelled; the destination discards the VM. */
export interface CancelMsg {
  type: MsgType.Cancel;
  reason: string;
}

/** Either way: the sender failed or rejected something and is closing the connection. */
export interface ErrorMsg {
  type: MsgType.Error;
  /** An ErrorCode of the sender (may be one this build does not know). */
  code: string;
  message: string;
}

/** Either way: keep-alive when nothing else was sent for a heartbeat interval. */
export interface HeartbeatMsg {
  type: MsgType.Heartbeat;
  seq: number;
}

/**
 * S→D, first message on a connection that joins an existing migration instead of starting one:
 * `fault` = the post-copy fault channel (PageRequest and their answers, never behind bulk
 * pages); `resume` = a reconnect after the main connection broke during post-copy.
 */
export interface AttachMsg {
  type: MsgType.Attach;
  migrationId: string;
  channel: AttachChannel;
}

export type AttachChannel = 'fault' | 'resume';
export const ATTACH_CHANNELS: readonly AttachChannel[] = ['fault', 'resume'];

/**
 * S→D, post-copy switchover (the vCPU is paused; CpuState and DeviceState came before): the
 * payload bitmap marks the pages the destination does NOT have current (never sent, or dirtied
 * since they were sent). Every other page is present; the destination may resume on Handoff.
 */
export interface PostcopyStartMsg {
  type: MsgType.PostcopyStart;
  /** 1 bit per page, LSB first, ceil(pageCount / 8) bytes: set = absent. */
  bitmap: Uint8Array;
}

/**
 * D→S, answer to RoundEnd: every page of that round is in memory here. The source waits for
 * the last round's before it stops the VM, so stop-and-copy never queues behind a round still
 * in flight (on a slow link that backlog was most of the downtime).
 */
export interface RoundAckMsg {
  type: MsgType.RoundAck;
  round: number;
}

/** D→S, answer to Attach `resume`: the pages still absent at the destination (1 bit per page, set = absent). */
export interface MissingMsg {
  type: MsgType.Missing;
  bitmap: Uint8Array;
}

/** Every message, discriminated by `type`. */
export type Message =
  | HelloMsg
  | WelcomeMsg
  | SetupMsg
  | SetupDoneMsg
  | PagesMsg
  | RoundEndMsg
  | CpuStateMsg
  | DeviceStateMsg
  | StopCopyEndMsg
  | ReadyMsg
  | HandoffMsg
  | ResumedMsg
  | PageRequestMsg
  | CompleteMsg
  | CancelMsg
  | ErrorMsg
  | HeartbeatMsg
  | AttachMsg
  | PostcopyStartMsg
  | MissingMsg
  | RoundAckMsg;

/** The message interface for a type number. */
export type MessageOf<T extends Message['type']> = Extract<Message, { type: T }>;

/** Who sends a message. */
export type Direction = 'source→dest' | 'dest→source' | 'both';

/** What a frame's payload holds. */
export type PayloadSpec =
  | { readonly kind: 'none' }
  /** Raw bytes for message field `field`; `optional` = a zero-length payload means absent. */
  | { readonly kind: 'bytes'; readonly field: string; readonly optional: boolean; readonly maxBytes: number }
  /** Page bytes: raw-kind count × pageSize. */
  | { readonly kind: 'pages' };

/** What the semantic checks may know about the stream. */
export interface CheckContext {
  pageSize: number;
  /** Undefined until a Setup (or the caller) told the decoder. */
  pageCount: number | undefined;
  payloadLen: number;
}

/** One row of the message table. */
export interface MessageSpec {
  name: string;
  direction: Direction;
  /** Metadata fields (everything but `type` and the payload field). */
  schema: ObjectSchema;
  payload: PayloadSpec;
  /** Checks beyond field types, run after the schema; throw a MigrationError. */
  check?: (message: Message, ctx: CheckContext) => void;
}

/** Largest register file accepted in CpuState. */
export const MAX_REGISTER_BYTES = 64 * 1024;
/** Page sizes accepted in Setup. */
export const MIN_PAGE_SIZE = 512;
export const MAX_PAGE_SIZE = 1024 * 1024;

function reject(code: ErrorCode, text: string): never {
  throw new MigrationError(code, text);
}

/** Number of pages of a VM spec (validated spec: memoryBytes is a multiple of pageSize). */
export function pageCountOf(vm: Pick<VmSpec, 'memoryBytes' | 'pageSize'>): number {
  return Math.floor(vm.memoryBytes / vm.pageSize);
}

function checkPageNumbers(pages: Uint32Array, ctx: CheckContext, what: string): void {
  const count = ctx.pageCount;
  if (count === undefined) return;
  for (let i = 0; i < pages.length; i++) {
    if (pages[i]! >= count) {
      reject('ERR_PAGE_OUT_OF_RANGE', `${what}: page ${pages[i]} is outside the VM (${count} pages)`);
    }
  }
}

/** Raw-kind pages in a batch; throws ERR_BAD_METADATA on a length mismatch or unknown kind. */
export function countRawPages(pages: Uint32Array, kinds: Uint8Array): number {
  if (kinds.length !== pages.length) {
    reject('ERR_BAD_METADATA', `Pages: ${pages.length} page numbers but ${kinds.length} kinds`);
  }
  let raw = 0;
  for (let i = 0; i < kinds.length; i++) {
    const kind = kinds[i]!;
    if (kind === PageKind.Raw) raw++;
    else if (kind > MAX_PAGE_KIND) reject('ERR_BAD_METADATA', `Pages: unknown page kind ${kind} at index ${i}`);
  }
  return raw;
}

const NONE: PayloadSpec = { kind: 'none' };
const u32 = 'uint32' as const;

/** The message table: one row per MsgType, driving validation, encoding and logging. */
export const MESSAGE_SPEC: Readonly<Record<Exclude<MsgType, MsgType.Invalid>, MessageSpec>> = Object.freeze({
  [MsgType.Hello]: {
    name: 'Hello',
    direction: 'source→dest',
    schema: { versions: 'uint32[]', agentId: 'string', capabilities: 'string[]' },
    payload: NONE,
    check: (m) => {
      if ((m as HelloMsg).versions.length === 0) reject('ERR_BAD_METADATA', 'Hello: empty version list');
    },
  },
  [MsgType.Welcome]: {
    name: 'Welcome',
    direction: 'dest→source',
    schema: { version: u32, agentId: 'string', capabilities: 'string[]' },
    payload: NONE,
  },
  [MsgType.Setup]: {
    name: 'Setup',
    direction: 'source→dest',
    schema: {
      migrationId: 'string',
      mode: { oneOf: MIGRATION_MODES },
      vm: {
        fields: {
          name: 'string',
          memoryBytes: 'uint',
          pageSize: 'uint',
          workload: 'string',
          init: 'string',
          seed: 'uint',
          nic: 'string',
        },
      },
    },
    payload: { kind: 'bytes', field: 'bitmap', optional: true, maxBytes: Number.MAX_SAFE_INTEGER },
    check: (m, ctx) => {
      const { vm } = m as SetupMsg;
      const ps = vm.pageSize;
      if (ps < MIN_PAGE_SIZE || ps > MAX_PAGE_SIZE || (ps & (ps - 1)) !== 0) {
        reject(
          'ERR_BAD_METADATA',
          `Setup: page size ${ps} is not a power of two in [${MIN_PAGE_SIZE}, ${MAX_PAGE_SIZE}]`,
        );
      }
      if (vm.memoryBytes === 0 || vm.memoryBytes % ps !== 0) {
        reject('ERR_BAD_METADATA', `Setup: memory size ${vm.memoryBytes} is not a positive multiple of ${ps}`);
      }
      const pages = pageCountOf(vm);
      if (pages > 0xffff_ffff) reject('ERR_BAD_METADATA', `Setup: ${pages} pages do not fit u32 page numbers`);
      if (ctx.payloadLen !== 0 && ctx.payloadLen !== Math.ceil(pages / 8)) {
        reject('ERR_BAD_PAYLOAD', `Setup: bitmap of ${ctx.payloadLen} bytes for ${pages} pages`);
      }
    },
  },
  [MsgType.SetupDone]: {
    name: 'SetupDone',
    direction: 'dest→source',
    schema: { preparedMs: 'number' },
    payload: NONE,
  },
  [MsgType.Pages]: {
    name: 'Pages',
    direction: 'source→dest',
    schema: { round: u32, requestId: u32, pages: 'u32array', kinds: 'u8array' },
    payload: { kind: 'pages' },
    check: (m, ctx) => {
      const { pages, kinds } = m as PagesMsg;
      const raw = countRawPages(pages, kinds);
      if (raw * ctx.pageSize !== ctx.payloadLen) {
        reject(
          'ERR_BAD_PAYLOAD',
          `Pages: ${raw} raw pages of ${ctx.pageSize} bytes but a ${ctx.payloadLen}-byte payload`,
        );
      }
      checkPageNumbers(pages, ctx, 'Pages');
    },
  },
  [MsgType.RoundEnd]: {
    name: 'RoundEnd',
    direction: 'source→dest',
    schema: { round: u32, pages: 'uint', bytes: 'uint' },
    payload: NONE,
  },
  [MsgType.CpuState]: {
    name: 'CpuState',
    direction: 'source→dest',
    schema: { steps: 'uint' },
    payload: { kind: 'bytes', field: 'registers', optional: false, maxBytes: MAX_REGISTER_BYTES },
  },
  [MsgType.DeviceState]: {
    name: 'DeviceState',
    direction: 'source→dest',
    schema: { state: 'record' },
    payload: NONE,
  },
  [MsgType.StopCopyEnd]: {
    name: 'StopCopyEnd',
    direction: 'source→dest',
    schema: { digest: 'string' },
    payload: NONE,
  },
  [MsgType.Ready]: { name: 'Ready', direction: 'dest→source', schema: { digest: 'string' }, payload: NONE },
  [MsgType.Handoff]: { name: 'Handoff', direction: 'source→dest', schema: {}, payload: NONE },
  [MsgType.Resumed]: {
    name: 'Resumed',
    direction: 'dest→source',
    schema: { handoffToResumeMs: 'number' },
    payload: NONE,
  },
  [MsgType.PageRequest]: {
    name: 'PageRequest',
    direction: 'dest→source',
    schema: { id: u32, pages: 'u32array' },
    payload: NONE,
    check: (m, ctx) => {
      const { id, pages } = m as PageRequestMsg;
      if (id === 0) reject('ERR_BAD_METADATA', 'PageRequest: id 0 is reserved for unsolicited pages');
      if (pages.length === 0) reject('ERR_BAD_METADATA', 'PageRequest: no pages');
      checkPageNumbers(pages, ctx, 'PageRequest');
    },
  },
  [MsgType.Complete]: { name: 'Complete', direction: 'both', schema: { stats: 'record' }, payload: NONE },
  [MsgType.Cancel]: { name: 'Cancel', direction: 'source→dest', schema: { reason: 'string' }, payload: NONE },
  [MsgType.Error]: { name: 'Error', direction: 'both', schema: { code: 'string', message: 'string' }, payload: NONE },
  [MsgType.Heartbeat]: { name: 'Heartbeat', direction: 'both', schema: { seq: u32 }, payload: NONE },
  [MsgType.Attach]: {
    name: 'Attach',
    direction: 'source→dest',
    schema: { migrationId: 'string', channel: { oneOf: ATTACH_CHANNELS } },
    payload: NONE,
  },
  [MsgType.PostcopyStart]: {
    name: 'PostcopyStart',
    direction: 'source→dest',
    schema: {},
    payload: { kind: 'bytes', field: 'bitmap', optional: false, maxBytes: Number.MAX_SAFE_INTEGER },
    check: (_m, ctx) => checkBitmapLength('PostcopyStart', ctx),
  },
  [MsgType.Missing]: {
    name: 'Missing',
    direction: 'dest→source',
    schema: {},
    payload: { kind: 'bytes', field: 'bitmap', optional: false, maxBytes: Number.MAX_SAFE_INTEGER },
    check: (_m, ctx) => checkBitmapLength('Missing', ctx),
  },
  [MsgType.RoundAck]: {
    name: 'RoundAck',
    direction: 'dest→source',
    schema: { round: u32 },
    payload: NONE,
  },
});

/** A page bitmap payload must have one bit per page, once the page count is known. */
function checkBitmapLength(name: string, ctx: CheckContext): void {
  if (ctx.pageCount !== undefined && ctx.payloadLen !== Math.ceil(ctx.pageCount / 8)) {
    reject('ERR_BAD_PAYLOAD', `${name}: bitmap of ${ctx.payloadLen} bytes for ${ctx.pageCount} pages`);
  }
}

/** The spec row of a type number, or undefined for 0 and unknown numbers. */
export function specOf(type: number): MessageSpec | undefined {
  return type >= 1 && type <= MAX_MSG_TYPE ? MESSAGE_SPEC[type as Exclude<MsgType, MsgType.Invalid>] : undefined;
}

/** The name of a message type, for logs ("Pages", "type 99"). */
export function messageName(type: number): string {
  return specOf(type)?.name ?? `type ${type}`;
}

/** True when a message of `type` may travel towards `receiver`. */
export function mayReceive(type: MsgType, receiver: 'source' | 'dest'): boolean {
  const direction = specOf(type)?.direction;
  if (direction === undefined) return false;
  return direction === 'both' || direction === (receiver === 'dest' ? 'source→dest' : 'dest→source');
}

function toU32Array(values: Uint32Array | readonly number[]): Uint32Array {
  return values instanceof Uint32Array ? values : Uint32Array.from(values);
}

function toU8Array(values: Uint8Array | readonly number[]): Uint8Array {
  return values instanceof Uint8Array ? values : Uint8Array.from(values);
}

/** Message factories: the only way agents build messages. */
export const msg = {
  hello(fields: {
    agentId: string;
    capabilities: readonly string[];
    /** @default SUPPORTED_VERSIONS */
    versions?: readonly number[];
  }): HelloMsg {
    return {
      type: MsgType.Hello,
      versions: [...(fields.versions ?? SUPPORTED_VERSIONS)],
      agentId: fields.agentId,
      capabilities: [...fields.capabilities],
    };
  },
  welcome(fields: { version: number; agentId: string; capabilities: readonly string[] }): WelcomeMsg {
    return {
      type: MsgType.Welcome,
      version: fields.version,
      agentId: fields.agentId,
      capabilities: [...fields.capabilities],
    };
  },
  setup(fields: { migrationId: string; mode: MigrationMode; vm: VmSpec; bitmap?: Uint8Array }): SetupMsg {
    const m: SetupMsg = {
      type: MsgType.Setup,
      migrationId: fields.migrationId,
      mode: fields.mode,
      vm: { ...fields.vm },
    };
    if (fields.bitmap !== undefined) m.bitmap = fields.bitmap;
    return m;
  },
  setupDone(preparedMs: number): SetupDoneMsg {
    return { type: MsgType.SetupDone, preparedMs };
  },
  /** A page batch; `data` = the raw pages' bytes concatenated (use `encodePages` to send views). */
  pages(fields: {
    round: number;
    /** @default 0 (unsolicited) */
    requestId?: number;
    pages: Uint32Array | readonly number[];
    kinds: Uint8Array | readonly number[];
    data?: Uint8Array;
  }): PagesMsg {
    const m: PagesMsg = {
      type: MsgType.Pages,
      round: fields.round,
      requestId: fields.requestId ?? 0,
      pages: toU32Array(fields.pages),
      kinds: toU8Array(fields.kinds),
    };
    if (fields.data !== undefined) m.data = fields.data;
    return m;
  },
  roundEnd(fields: { round: number; pages: number; bytes: number }): RoundEndMsg {
    return { type: MsgType.RoundEnd, round: fields.round, pages: fields.pages, bytes: fields.bytes };
  },
  cpuState(steps: number, registers: Uint8Array): CpuStateMsg {
    return { type: MsgType.CpuState, steps, registers };
  },
  deviceState(state: Record<string, unknown>): DeviceStateMsg {
    return { type: MsgType.DeviceState, state };
  },
  stopCopyEnd(digest: string): StopCopyEndMsg {
    return { type: MsgType.StopCopyEnd, digest };
  },
  ready(digest: string): ReadyMsg {
    return { type: MsgType.Ready, digest };
  },
  handoff(): HandoffMsg {
    return { type: MsgType.Handoff };
  },
  resumed(handoffToResumeMs: number): ResumedMsg {
    return { type: MsgType.Resumed, handoffToResumeMs };
  },
  pageRequest(id: number, pages: Uint32Array | readonly number[]): PageRequestMsg {
    return { type: MsgType.PageRequest, id, pages: toU32Array(pages) };
  },
  complete(stats: Record<string, unknown> = {}): CompleteMsg {
    return { type: MsgType.Complete, stats };
  },
  cancel(reason: string): CancelMsg {
    return { type: MsgType.Cancel, reason };
  },
  error(code: string, message: string): ErrorMsg {
    return { type: MsgType.Error, code, message };
  },
  /** The Error frame telling the peer why we are closing. */
  errorFrom(err: MigrationError): ErrorMsg {
    return { type: MsgType.Error, code: err.code, message: err.message };
  },
  heartbeat(seq: number): HeartbeatMsg {
    return { type: MsgType.Heartbeat, seq: seq >>> 0 };
  },
  attach(migrationId: string, channel: AttachChannel): AttachMsg {
    return { type: MsgType.Attach, migrationId, channel };
  },
  postcopyStart(bitmap: Uint8Array): PostcopyStartMsg {
    return { type: MsgType.PostcopyStart, bitmap };
  },
  missing(bitmap: Uint8Array): MissingMsg {
    return { type: MsgType.Missing, bitmap };
  },
  roundAck(round: number): RoundAckMsg {
    return { type: MsgType.RoundAck, round };
  },
} as const;

/** The MigrationError for an Error frame received from the peer (`ERR_PEER_ABORTED`). */
export function peerError(message: ErrorMsg): MigrationError {
  return new MigrationError('ERR_PEER_ABORTED', `peer failed with ${message.code}: ${message.message}`, {
    cause: { code: message.code, message: message.message },
  });
}
