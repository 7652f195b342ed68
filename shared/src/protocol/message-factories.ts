/**
 * The message factories, `msg.*`: the only way agents build messages (as cloud-hypervisor's
 * `Request::page_fault()`), so every message leaves with all its fields and the right typed
 * arrays; and `peerError`, the other way round — an Error frame received into a MigrationError.
 */
import { MigrationError } from '../errors.ts';
import {
  MsgType,
  type AttachChannel,
  type AttachMsg,
  type CancelMsg,
  type CompleteMsg,
  type CountersignatureMsg,
  type CpuStateMsg,
  type DeviceStateMsg,
  type DiskAbsentMsg,
  type DiskAckMsg,
  type DiskBlocksMsg,
  type DiskAllocatedMsg,
  type DiskMissingMsg,
  type DiskPrehashedMsg,
  type DiskWrittenMsg,
  type FaultListeningMsg,
  type FaultOpenMsg,
  type DiskRequestMsg,
  type ErrorMsg,
  type HandoffMsg,
  type HeartbeatMsg,
  type HelloMsg,
  type MigrationMode,
  type MissingMsg,
  type PageRequestMsg,
  type PagesMsg,
  type PostcopyStartMsg,
  type QueryMsg,
  type QueryResultMsg,
  type QueryState,
  type ReadyMsg,
  type RecordMsg,
  type SectionDigests,
  type ResumedMsg,
  type RoundAckMsg,
  type RoundEndMsg,
  type SetupDisk,
  type SetupDoneMsg,
  type SetupMsg,
  type SetupVm,
  type StopCopyEndMsg,
  type WelcomeMsg,
} from './message-types.ts';
import { SUPPORTED_VERSIONS } from './version.ts';

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
  setup(fields: {
    migrationId: string;
    mode: MigrationMode;
    vm: SetupVm;
    /** @default "" (no ticket) */
    ticket?: string;
    bitmap?: Uint8Array;
    disk?: SetupDisk;
    /** With `dedup-host`: how many host content hashes to ask for. @default none */
    hostContent?: number;
    /** With `multifd`: the parallel bulk channels asked for (2..MAX_CHANNELS). @default none */
    channels?: number;
  }): SetupMsg {
    const m: SetupMsg = {
      type: MsgType.Setup,
      migrationId: fields.migrationId,
      mode: fields.mode,
      vm: { ...fields.vm },
      ticket: fields.ticket ?? '',
    };
    if (fields.bitmap !== undefined) m.bitmap = fields.bitmap;
    if (fields.disk !== undefined) m.disk = { ...fields.disk };
    if (fields.hostContent !== undefined) m.hostContent = fields.hostContent;
    if (fields.channels !== undefined) m.channels = fields.channels;
    return m;
  },
  /** `host`: the host content offered (Setup asked for it): its hashes, 32 bytes each, and the ms it took. */
  setupDone(
    preparedMs: number,
    host?: { hashes: Uint8Array; ms: number },
    faultThread?: { port: number; token: string },
    multifd?: { ports: readonly number[]; token: string },
  ): SetupDoneMsg {
    const m: SetupDoneMsg = { type: MsgType.SetupDone, preparedMs };
    if (faultThread !== undefined) {
      m.faultPort = faultThread.port;
      m.faultToken = faultThread.token;
    }
    if (multifd !== undefined) {
      m.multifdPorts = [...multifd.ports];
      m.multifdToken = multifd.token;
    }
    if (host !== undefined) {
      m.hostMs = host.ms;
      // A zero-length payload reads as absent: none offered.
      if (host.hashes.length > 0) m.hostHashes = host.hashes;
    }
    return m;
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
  stopCopyEnd(digests: SectionDigests): StopCopyEndMsg {
    return { type: MsgType.StopCopyEnd, digests: { ...digests } };
  },
  ready(digests: SectionDigests): ReadyMsg {
    return { type: MsgType.Ready, digests: { ...digests } };
  },
  handoff(): HandoffMsg {
    return { type: MsgType.Handoff };
  },
  /** `stats`: pre-copy, what only the destination measured (as Complete's in post-copy). */
  resumed(handoffToResumeMs: number, stats?: Record<string, unknown>): ResumedMsg {
    return stats === undefined
      ? { type: MsgType.Resumed, handoffToResumeMs }
      : { type: MsgType.Resumed, handoffToResumeMs, stats };
  },
  pageRequest(id: number, pages: Uint32Array | readonly number[]): PageRequestMsg {
    return { type: MsgType.PageRequest, id, pages: toU32Array(pages) };
  },
  complete(stats: Record<string, unknown> = {}, digests: SectionDigests = {}): CompleteMsg {
    return { type: MsgType.Complete, stats, digests: { ...digests } };
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
  attach(migrationId: string, channel: AttachChannel, token?: string): AttachMsg {
    return token === undefined
      ? { type: MsgType.Attach, migrationId, channel }
      : { type: MsgType.Attach, migrationId, channel, token };
  },
  postcopyStart(bitmap: Uint8Array, digests: SectionDigests = {}): PostcopyStartMsg {
    return { type: MsgType.PostcopyStart, bitmap, digests: { ...digests } };
  },
  missing(bitmap: Uint8Array): MissingMsg {
    return { type: MsgType.Missing, bitmap };
  },
  /** Disk blocks; `data` = their bytes concatenated (4096 each). */
  diskBlocks(fields: {
    blocks: Uint32Array | readonly number[];
    data: Uint8Array;
    /** @default 0 (unsolicited) */
    requestId?: number;
    /** @default 0 (no acknowledgement wanted) */
    ackId?: number;
  }): DiskBlocksMsg {
    return {
      type: MsgType.DiskBlocks,
      requestId: fields.requestId ?? 0,
      ackId: fields.ackId ?? 0,
      blocks: toU32Array(fields.blocks),
      data: fields.data,
    };
  },
  diskAck(id: number): DiskAckMsg {
    return { type: MsgType.DiskAck, id };
  },
  diskRequest(id: number, blocks: Uint32Array | readonly number[]): DiskRequestMsg {
    return { type: MsgType.DiskRequest, id, blocks: toU32Array(blocks) };
  },
  diskAbsent(bitmap: Uint8Array): DiskAbsentMsg {
    return { type: MsgType.DiskAbsent, bitmap };
  },
  diskMissing(bitmap: Uint8Array): DiskMissingMsg {
    return { type: MsgType.DiskMissing, bitmap };
  },
  diskAllocated(bitmap: Uint8Array): DiskAllocatedMsg {
    return { type: MsgType.DiskAllocated, bitmap };
  },
  diskPrehashed(ms: number, outcome: DiskPrehashedMsg['outcome']): DiskPrehashedMsg {
    return { type: MsgType.DiskPrehashed, ms: Math.min(0xffff_ffff, Math.max(0, Math.round(ms))), outcome };
  },
  diskWritten(blocks: Uint32Array | readonly number[]): DiskWrittenMsg {
    return { type: MsgType.DiskWritten, blocks: toU32Array(blocks) };
  },
  faultOpen(): FaultOpenMsg {
    return { type: MsgType.FaultOpen };
  },
  /** Where the fault thread listens; none: no thread could start (attach at the main port). */
  faultListening(faultThread?: { port: number; token: string }): FaultListeningMsg {
    const m: FaultListeningMsg = { type: MsgType.FaultListening };
    if (faultThread !== undefined) {
      m.faultPort = faultThread.port;
      m.faultToken = faultThread.token;
    }
    return m;
  },
  roundAck(round: number): RoundAckMsg {
    return { type: MsgType.RoundAck, round };
  },
  /** The source's signed record: its canonical JSON bytes, the signature of them, the signer's certificate. */
  record(record: Uint8Array, signature: { value: string; certificate: string }): RecordMsg {
    return { type: MsgType.Record, record, signature: signature.value, certificate: signature.certificate };
  },
  /** The destination's countersignature, or (`{ refused }`) its refusal and why. */
  countersignature(answer: { value: string; certificate: string } | { refused: string }): CountersignatureMsg {
    return 'refused' in answer
      ? { type: MsgType.Countersignature, signature: '', certificate: '', refused: answer.refused }
      : { type: MsgType.Countersignature, signature: answer.value, certificate: answer.certificate, refused: '' };
  },
  /** Does the destination hold `vm` (handed over by migration `migrationId`)? */
  query(migrationId: string, vm: string): QueryMsg {
    return { type: MsgType.Query, migrationId, vm };
  },
  queryResult(state: QueryState): QueryResultMsg {
    return { type: MsgType.QueryResult, state };
  },
} as const;

/** The MigrationError for an Error frame received from the peer (`ERR_PEER_ABORTED`). */
export function peerError(message: ErrorMsg): MigrationError {
  return new MigrationError('ERR_PEER_ABORTED', `peer failed with ${message.code}: ${message.message}`, {
    cause: { code: message.code, message: message.message },
  });
}
