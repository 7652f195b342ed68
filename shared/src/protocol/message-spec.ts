/**
 * The message table, MESSAGE_SPEC: one row per MsgType with its name, direction, metadata schema,
 * payload rule and semantic checks — what the encoder, the decoder, the logs and the generated
 * docs/protocol.md table are all driven by (like QEMU's `mig_cmd_args[]`), and the small lookups
 * over it (specOf, messageName, mayReceive). The checks that several rows share (page numbers in
 * range, page kinds, bitmap lengths) live here too, next to the rows that use them.
 */
import { MigrationError, type ErrorCode } from '../errors.ts';
import {
  ATTACH_CHANNELS,
  MAX_MSG_TYPE,
  MIGRATION_MODES,
  MsgType,
  QUERY_STATES,
  STORAGE_MODES,
  type AttachMsg,
  type DiskBlocksMsg,
  type DiskRequestMsg,
  type DiskWrittenMsg,
  type FaultListeningMsg,
  type HelloMsg,
  type Message,
  type PageRequestMsg,
  type PagesMsg,
  type SetupDoneMsg,
  type SetupMsg,
  type SetupVm,
} from './message-types.ts';
import type { ObjectSchema } from './schema.ts';
import { pagesLayout } from './page-encodings.ts';
import { MAX_CHANNELS } from '../multifd/partition.ts';

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
  /** Disk blocks of the VM (Setup's disk); undefined until known, or without a disk. */
  blockCount?: number | undefined;
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

/** Largest migration record accepted in Record (security/record.ts has the same bound). */
export const MAX_RECORD_BYTES = 64 * 1024;
/** Largest register file accepted in CpuState. */
export const MAX_REGISTER_BYTES = 64 * 1024;
/** Bytes per disk block (the disk's BLOCK_SIZE: one guest page). */
export const DISK_BLOCK_BYTES = 4096;
/** Most blocks in one DiskBlocks or DiskRequest (1 MiB of data). */
export const MAX_DISK_BATCH_BLOCKS = 256;
/** Most block numbers in one DiskWritten (256 KiB of metadata; more go in several). */
export const MAX_DISK_WRITTEN_BLOCKS = 65_536;
/** Disk sizes Setup accepts (the disk's MIN_DISK_BYTES, MAX_DISK_BYTES). */
const MIN_SETUP_DISK_BYTES = 1024 * 1024;
const MAX_SETUP_DISK_BYTES = 1024 ** 4;
/**
 * Most host contents a destination offers (`dedup-host`): SetupDone carries at most this many
 * 32-byte hashes (512 KiB), and a reference may name at most pageCount + this − 1.
 */
export const MAX_HOST_CONTENT_PAGES = 16_384;
/** Bytes of one host content hash in SetupDone (SHA-256). */
export const HOST_HASH_BYTES = 32;
/** Page sizes accepted in Setup. */
export const MIN_PAGE_SIZE = 512;
export const MAX_PAGE_SIZE = 1024 * 1024;

/** True for an accepted page size: a power of two in [MIN_PAGE_SIZE, MAX_PAGE_SIZE]. */
export function isPageSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_PAGE_SIZE && n <= MAX_PAGE_SIZE && (n & (n - 1)) === 0;
}

function reject(code: ErrorCode, text: string): never {
  throw new MigrationError(code, text);
}

/** Number of pages of a VM spec (validated spec: memoryBytes is a multiple of pageSize). */
export function pageCountOf(vm: Pick<SetupVm, 'memoryBytes' | 'pageSize'>): number {
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

/**
 * A reference names a page of the VM or host content (`dedup-host`): below pageCount +
 * MAX_HOST_CONTENT_PAGES. Whether the destination offered that entry is the applier's check
 * (ERR_BAD_ENCODING): the decoder does not know what was offered.
 */
function checkReferences(refs: Uint32Array, ctx: CheckContext): void {
  const count = ctx.pageCount;
  if (count === undefined) return;
  const limit = count + MAX_HOST_CONTENT_PAGES;
  for (let i = 0; i < refs.length; i++) {
    if (refs[i]! >= limit) {
      reject(
        'ERR_PAGE_OUT_OF_RANGE',
        `Pages references: ${refs[i]} is outside the VM (${count} pages) and its host content (at most ${MAX_HOST_CONTENT_PAGES})`,
      );
    }
  }
}

function checkBlockNumbers(blocks: Uint32Array, ctx: CheckContext, what: string, max = MAX_DISK_BATCH_BLOCKS): void {
  if (blocks.length === 0) reject('ERR_BAD_METADATA', `${what}: no blocks`);
  if (blocks.length > max) reject('ERR_BAD_METADATA', `${what}: ${blocks.length} blocks, at most ${max}`);
  const count = ctx.blockCount;
  if (count === undefined) return;
  for (let i = 0; i < blocks.length; i++) {
    if (blocks[i]! >= count) {
      reject('ERR_BLOCK_OUT_OF_RANGE', `${what}: block ${blocks[i]} is outside the disk (${count} blocks)`);
    }
  }
}

/** Length of a fault thread's token (`fault-thread`): 32 random bytes as hex. */
export const FAULT_TOKEN_LENGTH = 64;
const FAULT_TOKEN = /^[0-9a-f]{64}$/;

function checkFaultToken(token: string, what: string, kind = 'fault'): void {
  if (!FAULT_TOKEN.test(token)) {
    reject('ERR_BAD_METADATA', `${what}: a ${kind} token is ${FAULT_TOKEN_LENGTH} lower-case hex digits`);
  }
}

/** Where a fault thread listens (SetupDone, FaultListening): port and token together or not at all. */
function checkFaultAddress(m: { faultPort?: number; faultToken?: string }, name: string): void {
  const { faultPort, faultToken } = m;
  if ((faultPort === undefined) !== (faultToken === undefined)) {
    reject('ERR_BAD_METADATA', `${name}: faultPort and faultToken come together or not at all`);
  }
  if (faultPort !== undefined) checkPort(faultPort, `${name}: faultPort`);
  if (faultToken !== undefined) checkFaultToken(faultToken, name);
}

function checkPort(port: number, what: string): void {
  if (port < 1 || port > 65_535) reject('ERR_BAD_METADATA', `${what} ${port} is not a TCP port`);
}

/** A block bitmap payload must have one bit per block, once the block count is known. */
function checkBlockBitmapLength(name: string, ctx: CheckContext): void {
  if (ctx.blockCount !== undefined && ctx.payloadLen !== Math.ceil(ctx.blockCount / 8)) {
    reject('ERR_BAD_PAYLOAD', `${name}: bitmap of ${ctx.payloadLen} bytes for ${ctx.blockCount} blocks`);
  }
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
      ticket: 'string',
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
      disk: { optional: { fields: { sizeBytes: 'uint', storage: { oneOf: STORAGE_MODES } } } },
      hostContent: { optional: u32 },
      channels: { optional: u32 },
    },
    payload: { kind: 'bytes', field: 'bitmap', optional: true, maxBytes: Number.MAX_SAFE_INTEGER },
    check: (m, ctx) => {
      const { vm } = m as SetupMsg;
      const ps = vm.pageSize;
      if (!isPageSize(ps)) {
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
      const { hostContent } = m as SetupMsg;
      if (hostContent !== undefined && (hostContent < 1 || hostContent > MAX_HOST_CONTENT_PAGES)) {
        reject('ERR_BAD_METADATA', `Setup: hostContent ${hostContent} is not in [1, ${MAX_HOST_CONTENT_PAGES}]`);
      }
      const { channels } = m as SetupMsg;
      if (channels !== undefined && (channels < 2 || channels > MAX_CHANNELS)) {
        reject('ERR_BAD_METADATA', `Setup: channels ${channels} is not in [2, ${MAX_CHANNELS}]`);
      }
      const disk = (m as SetupMsg).disk;
      if (
        disk &&
        (disk.sizeBytes < MIN_SETUP_DISK_BYTES ||
          disk.sizeBytes > MAX_SETUP_DISK_BYTES ||
          disk.sizeBytes % DISK_BLOCK_BYTES !== 0)
      ) {
        reject(
          'ERR_BAD_METADATA',
          `Setup: a disk of ${disk.sizeBytes} bytes is not a whole number of ${DISK_BLOCK_BYTES}-byte blocks in [1 MiB, 1 TiB]`,
        );
      }
    },
  },
  [MsgType.SetupDone]: {
    name: 'SetupDone',
    direction: 'dest→source',
    schema: {
      preparedMs: 'number',
      hostMs: { optional: 'number' },
      faultPort: { optional: u32 },
      faultToken: { optional: 'string' },
      multifdPorts: { optional: 'uint32[]' },
      multifdToken: { optional: 'string' },
    },
    payload: {
      kind: 'bytes',
      field: 'hostHashes',
      optional: true,
      maxBytes: MAX_HOST_CONTENT_PAGES * HOST_HASH_BYTES,
    },
    check: (m, ctx) => {
      if (ctx.payloadLen % HOST_HASH_BYTES !== 0) {
        reject('ERR_BAD_PAYLOAD', `SetupDone: ${ctx.payloadLen} bytes of host content hashes, not a multiple of 32`);
      }
      checkFaultAddress(m as SetupDoneMsg, 'SetupDone');
      const { multifdPorts, multifdToken } = m as SetupDoneMsg;
      if ((multifdPorts === undefined) !== (multifdToken === undefined)) {
        reject('ERR_BAD_METADATA', 'SetupDone: multifdPorts and multifdToken come together or not at all');
      }
      if (multifdPorts !== undefined) {
        if (multifdPorts.length < 2 || multifdPorts.length > MAX_CHANNELS) {
          reject('ERR_BAD_METADATA', `SetupDone: ${multifdPorts.length} multifd ports, not 2..${MAX_CHANNELS}`);
        }
        for (const port of multifdPorts) checkPort(port, 'SetupDone: a multifd port');
      }
      if (multifdToken !== undefined) checkFaultToken(multifdToken, 'SetupDone', 'multifd');
    },
  },
  [MsgType.Pages]: {
    name: 'Pages',
    direction: 'source→dest',
    schema: {
      round: u32,
      requestId: u32,
      pages: 'u32array',
      kinds: 'u8array',
      deltas: { optional: 'u32array' },
      refs: { optional: 'u32array' },
      zcodec: { optional: u32 },
      zlen: { optional: u32 },
    },
    payload: { kind: 'pages' },
    check: (m, ctx) => {
      const message = m as PagesMsg;
      const layout = pagesLayout(message, ctx.pageSize);
      if (layout.payloadBytes !== ctx.payloadLen) {
        reject(
          'ERR_BAD_PAYLOAD',
          `Pages: ${layout.raw} raw pages of ${ctx.pageSize} bytes, ${layout.deltaBytes} bytes of deltas and a ` +
            `${layout.zlen}-byte compressed block but a ${ctx.payloadLen}-byte payload`,
        );
      }
      checkPageNumbers(message.pages, ctx, 'Pages');
      if (message.refs !== undefined) checkReferences(message.refs, ctx);
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
    schema: { digests: 'digests' },
    payload: NONE,
  },
  [MsgType.Ready]: { name: 'Ready', direction: 'dest→source', schema: { digests: 'digests' }, payload: NONE },
  [MsgType.Handoff]: { name: 'Handoff', direction: 'source→dest', schema: {}, payload: NONE },
  [MsgType.Resumed]: {
    name: 'Resumed',
    direction: 'dest→source',
    schema: { handoffToResumeMs: 'number', stats: { optional: 'record' } },
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
  [MsgType.Complete]: {
    name: 'Complete',
    direction: 'dest→source',
    schema: { stats: 'record', digests: 'digests' },
    payload: NONE,
  },
  [MsgType.Cancel]: { name: 'Cancel', direction: 'source→dest', schema: { reason: 'string' }, payload: NONE },
  [MsgType.Error]: { name: 'Error', direction: 'both', schema: { code: 'string', message: 'string' }, payload: NONE },
  [MsgType.Heartbeat]: { name: 'Heartbeat', direction: 'both', schema: { seq: u32 }, payload: NONE },
  [MsgType.Attach]: {
    name: 'Attach',
    direction: 'source→dest',
    schema: { migrationId: 'string', channel: { oneOf: ATTACH_CHANNELS }, token: { optional: 'string' } },
    payload: NONE,
    check: (m) => {
      const { token } = m as AttachMsg;
      if (token !== undefined) checkFaultToken(token, 'Attach');
    },
  },
  [MsgType.PostcopyStart]: {
    name: 'PostcopyStart',
    direction: 'source→dest',
    schema: { digests: 'digests' },
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
  [MsgType.Record]: {
    name: 'Record',
    direction: 'source→dest',
    schema: { signature: 'string', certificate: 'string' },
    payload: { kind: 'bytes', field: 'record', optional: false, maxBytes: MAX_RECORD_BYTES },
  },
  [MsgType.Countersignature]: {
    name: 'Countersignature',
    direction: 'dest→source',
    schema: { signature: 'string', certificate: 'string', refused: 'string' },
    payload: NONE,
  },
  [MsgType.Query]: {
    name: 'Query',
    direction: 'source→dest',
    schema: { migrationId: 'string', vm: 'string' },
    payload: NONE,
  },
  [MsgType.QueryResult]: {
    name: 'QueryResult',
    direction: 'dest→source',
    schema: { state: { oneOf: QUERY_STATES } },
    payload: NONE,
  },
  [MsgType.DiskBlocks]: {
    name: 'DiskBlocks',
    direction: 'source→dest',
    schema: { requestId: u32, ackId: u32, blocks: 'u32array' },
    payload: { kind: 'bytes', field: 'data', optional: false, maxBytes: MAX_DISK_BATCH_BLOCKS * DISK_BLOCK_BYTES },
    check: (m, ctx) => {
      const { blocks } = m as DiskBlocksMsg;
      checkBlockNumbers(blocks, ctx, 'DiskBlocks');
      if (ctx.payloadLen !== blocks.length * DISK_BLOCK_BYTES) {
        reject('ERR_BAD_PAYLOAD', `DiskBlocks: ${blocks.length} blocks but a ${ctx.payloadLen}-byte payload`);
      }
    },
  },
  [MsgType.DiskAck]: { name: 'DiskAck', direction: 'dest→source', schema: { id: u32 }, payload: NONE },
  [MsgType.DiskRequest]: {
    name: 'DiskRequest',
    direction: 'dest→source',
    schema: { id: u32, blocks: 'u32array' },
    payload: NONE,
    check: (m, ctx) => {
      const { id, blocks } = m as DiskRequestMsg;
      if (id === 0) reject('ERR_BAD_METADATA', 'DiskRequest: id 0 is reserved for unsolicited blocks');
      checkBlockNumbers(blocks, ctx, 'DiskRequest');
    },
  },
  [MsgType.DiskAbsent]: {
    name: 'DiskAbsent',
    direction: 'source→dest',
    schema: {},
    payload: { kind: 'bytes', field: 'bitmap', optional: false, maxBytes: MAX_SETUP_DISK_BYTES / DISK_BLOCK_BYTES / 8 },
    check: (_m, ctx) => checkBlockBitmapLength('DiskAbsent', ctx),
  },
  [MsgType.DiskMissing]: {
    name: 'DiskMissing',
    direction: 'dest→source',
    schema: {},
    payload: { kind: 'bytes', field: 'bitmap', optional: false, maxBytes: MAX_SETUP_DISK_BYTES / DISK_BLOCK_BYTES / 8 },
    check: (_m, ctx) => checkBlockBitmapLength('DiskMissing', ctx),
  },
  [MsgType.DiskAllocated]: {
    name: 'DiskAllocated',
    direction: 'source→dest',
    schema: {},
    payload: { kind: 'bytes', field: 'bitmap', optional: false, maxBytes: MAX_SETUP_DISK_BYTES / DISK_BLOCK_BYTES / 8 },
    check: (_m, ctx) => checkBlockBitmapLength('DiskAllocated', ctx),
  },
  [MsgType.DiskPrehashed]: {
    name: 'DiskPrehashed',
    direction: 'dest→source',
    schema: { ms: u32, outcome: { oneOf: ['done', 'failed'] } },
    payload: NONE,
  },
  [MsgType.DiskWritten]: {
    name: 'DiskWritten',
    direction: 'source→dest',
    schema: { blocks: 'u32array' },
    payload: NONE,
    check: (m, ctx) => checkBlockNumbers((m as DiskWrittenMsg).blocks, ctx, 'DiskWritten', MAX_DISK_WRITTEN_BLOCKS),
  },
  [MsgType.FaultOpen]: {
    name: 'FaultOpen',
    direction: 'source→dest',
    schema: {},
    payload: NONE,
  },
  [MsgType.FaultListening]: {
    name: 'FaultListening',
    direction: 'dest→source',
    schema: { faultPort: { optional: u32 }, faultToken: { optional: 'string' } },
    payload: NONE,
    check: (m) => checkFaultAddress(m as FaultListeningMsg, 'FaultListening'),
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
