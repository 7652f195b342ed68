/**
 * What travels on the data channel, as types: the `MsgType` numbering (0 reserved, as QEMU's
 * `MIG_CMD_INVALID`), one interface per message and the `Message` union keyed by `type`, plus the
 * small vocabularies messages use (MigrationMode, PageKind, AttachChannel). Nothing here runs:
 * the rules about each message (direction, schema, payload) are in message-spec.ts, and messages
 * are built only through the factories in message-factories.ts.
 *
 * A message's fields are split on the wire: everything in its `schema` goes into the msgpack
 * metadata; the one field named by `payload.field` (page bytes, register bytes, a bitmap) goes
 * raw into the frame payload. Wire numbers never change meaning within a protocol version; add
 * new types at the end.
 */
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
  Record = 22,
  Countersignature = 23,
  Query = 24,
  QueryResult = 25,
  DiskBlocks = 26,
  DiskAck = 27,
  DiskRequest = 28,
  DiskAbsent = 29,
  DiskMissing = 30,
  DiskAllocated = 31,
  DiskPrehashed = 32,
  DiskWritten = 33,
  FaultOpen = 34,
  FaultListening = 35,
}

/** Highest assigned MsgType. */
export const MAX_MSG_TYPE = MsgType.FaultListening;

/** How a migration moves memory (MIGRATION_MODES is the one list of them). */
export type MigrationMode = 'precopy' | 'postcopy' | 'hybrid';
export const MIGRATION_MODES: readonly MigrationMode[] = ['precopy', 'postcopy', 'hybrid'];

/**
 * How a VM's disk migrates (issue 15; STORAGE_MODES is the one list of them):
 *   shared    both agents open the same image (shared storage): no disk bytes travel
 *   copy      pre-copy of the disk beside RAM: allocated blocks, then what was written since
 *   mirror    as copy until the bulk copy is done, then every guest write completes only once
 *             the destination has it too (QEMU's write-blocking mirror): converges at any rate
 *   postcopy  the destination resumes without the disk; reads of absent blocks are fetched
 */
export type StorageMode = 'shared' | 'copy' | 'mirror' | 'postcopy';
export const STORAGE_MODES: readonly StorageMode[] = ['shared', 'copy', 'mirror', 'postcopy'];

/**
 * Per-page encoding inside a Pages batch (page-encodings.ts lays out the payload). Delta and
 * Dedup build on what the destination holds, so they are used only before the destination's VM
 * runs (pre-copy rounds and the stop-and-copy); Compressed carries the page itself.
 */
export const enum PageKind {
  /** `pageSize` raw bytes follow in the payload. */
  Raw = 0,
  /** The page is all zero: no bytes travel. */
  Zero = 1,
  /** XBZRLE delta against the destination's copy of the page (capability `xbzrle`); its length in `deltas`. */
  Delta = 2,
  /**
   * The content of destination page `refs[k]` (capability `dedup`), or of host content
   * `refs[k] − pageCount` (capability `dedup-host`): no bytes travel.
   */
  Dedup = 3,
  /** The page's bytes are in the batch's compressed block (capability `compress`, codec `zcodec`). */
  Compressed = 4,
}
/** Highest defined PageKind (a kind above it is rejected). */
export const MAX_PAGE_KIND = PageKind.Compressed;

/**
 * The VM being migrated, as Setup describes it so the destination can rebuild it (the wire form;
 * `VmSpec` in shared/src/vm is the parsed spec a VM is booted from).
 */
export interface SetupVm {
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

/** The VM's disk as Setup describes it (capability `disk`): its size and how it migrates. */
export interface SetupDisk {
  /** A whole number of 4 KiB blocks in [1 MiB, 1 TiB]. */
  sizeBytes: number;
  storage: StorageMode;
}

/** S→D: what is migrating. Payload: optional bitmap, bit n set = page n may be non-zero. */
export interface SetupMsg {
  type: MsgType.Setup;
  migrationId: string;
  mode: MigrationMode;
  vm: SetupVm;
  /**
   * The single-use ticket the destination's operator issued for this VM and this source
   * (`prepare-incoming`), or "" for none. A destination that requires tickets refuses a Setup
   * without a valid one before it reserves any memory.
   */
  ticket: string;
  /**
   * 1 bit per page, LSB first (page n = byte n>>3, bit n&7), exactly ceil(pageCount / 8) bytes;
   * pages whose bit is clear are zero and will never be sent. Absent: no such knowledge.
   */
  bitmap?: Uint8Array;
  /** The VM's disk; absent for a VM without one. */
  disk?: SetupDisk;
  /**
   * With `dedup-host`: the most hashes of host content (page contents the destination holds
   * already, in its other VMs) the source wants in SetupDone, 1..MAX_HOST_CONTENT_PAGES. Absent:
   * none (dedup is off for this migration).
   */
  hostContent?: number;
  /**
   * With `multifd`: the parallel bulk channels asked for, 2..MAX_CHANNELS (pre-copy rounds deal
   * raw and zero pages to them). Absent: the main connection only.
   */
  channels?: number;
}

/**
 * D→S: the destination has allocated (and pre-faulted) memory. Payload, when Setup asked for
 * host content: the SHA-256 (32 bytes) of each content it offers, entry k at k × 32; a Dedup
 * reference to `pageCount + k` then means a copy of content k. Absent: none offered.
 */
export interface SetupDoneMsg {
  type: MsgType.SetupDone;
  preparedMs: number;
  /** Time the destination took to choose and snapshot the host content it offers, ms. */
  hostMs?: number;
  hostHashes?: Uint8Array;
  /**
   * `fault-thread`: the port (on the address the source reached) where the destination's fault
   * thread listens, and the token its Attach fault must carry. Both or neither.
   */
  faultPort?: number;
  faultToken?: string;
  /**
   * `multifd`, when Setup asked for channels and the destination listens for them: channel i's
   * port at i (as many as Setup asked), and the token each channel's Attach must carry. Both or
   * neither; neither: the main connection only.
   */
  multifdPorts?: number[];
  multifdToken?: string;
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
  /** Byte length of each Delta page's encoding, in batch order (absent: no Delta page). */
  deltas?: Uint32Array;
  /**
   * The destination page each Dedup page copies, in batch order (absent: no Dedup page); with
   * `dedup-host`, `pageCount + k` is host content k offered in SetupDone.
   */
  refs?: Uint32Array;
  /** Codec of the compressed block (index in COMPRESSION_CODECS); absent: no Compressed page. */
  zcodec?: number;
  /** Bytes of the compressed block, which inflates to (Compressed pages) × pageSize. */
  zlen?: number;
  /**
   * The payload: raw pages' bytes in batch order, then the Delta encodings in batch order, then
   * the compressed block (page-encodings.ts). Set when the frame was decoded without a PageSink, or
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

/**
 * Section name → digest (hex), as computed by the side that sends it: `ram` (memory), `cpu`
 * (registers), `devices` (device state). Each side hashes its own copy; the other compares.
 */
export type SectionDigests = Readonly<Record<string, string>>;

/**
 * S→D: everything of the stop-and-copy phase has been sent (pre-copy), or every absent page has
 * been pushed (post-copy): the source's digests of what it sent — pre-copy every section,
 * post-copy `ram`.
 */
export interface StopCopyEndMsg {
  type: MsgType.StopCopyEnd;
  digests: SectionDigests;
}

/**
 * D→S: what the stop point carried is loaded and matched the source's digests; the
 * destination's own digests of it (pre-copy: every section; post-copy: the state sections).
 */
export interface ReadyMsg {
  type: MsgType.Ready;
  digests: SectionDigests;
}

/** S→D: ownership passes to the destination (the source will never resume this VM). */
export interface HandoffMsg {
  type: MsgType.Handoff;
}

/** D→S: the VM runs on the destination; time from receiving Handoff to the vCPU running. */
export interface ResumedMsg {
  type: MsgType.Resumed;
  handoffToResumeMs: number;
  /**
   * Pre-copy: what only the destination measured over its part (its threads' CPU time, the
   * pre-fault), plain data for the report, checked by the source (report/threads.ts). An older
   * destination sends none; an older source ignores it.
   */
  stats?: Record<string, unknown>;
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
  /** The destination's own digests (post-copy: `ram`, of memory once every page arrived). */
  digests: SectionDigests;
}

/**
 * S→D: the source ends the migration before Handoff (the operator cancelled, or it failed on the
 * source) while the connection works; `reason` is `ERR_CODE: message`. The destination discards
 * the VM; with `signed-record` the source's Record of that outcome follows, to countersign.
 */
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
  /** `fault` to a fault thread (`fault-thread`): the token its SetupDone gave. */
  token?: string;
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
  /** The source's digests of the state sections it sent (cpu, devices). */
  digests: SectionDigests;
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

/**
 * S→D, with `signed-record` negotiated, once the migration completed (after Resumed, or after
 * Complete in post-copy): the source's migration record as canonical JSON (security/record.ts)
 * in the payload, its ES256 signature of exactly those bytes, and its certificate (PEM).
 */
export interface RecordMsg {
  type: MsgType.Record;
  /** base64url r‖s. */
  signature: string;
  certificate: string;
  record: Uint8Array;
}

/**
 * D→S, answer to Record: the destination checked the record against what it saw and kept it in
 * its audit log; `signature` is its countersignature (of the record with the source's
 * signature) and `certificate` its certificate — or both "" and `refused` says why it does not
 * sign.
 */
export interface CountersignatureMsg {
  type: MsgType.Countersignature;
  signature: string;
  certificate: string;
  refused: string;
}

/**
 * What a destination can say of a VM it was asked about (QueryResult): `absent` — it holds no
 * copy (never had one, or discarded it); otherwise the state of the copy it holds (a VmState:
 * `incoming` is a copy not yet handed over, `migrated` one that left again).
 */
export const QUERY_STATES = ['absent', 'incoming', 'running', 'paused', 'migrating-out', 'migrated'] as const;
export type QueryState = (typeof QUERY_STATES)[number];

/**
 * S→D, the only message of its connection after the handshake: does the destination hold VM
 * `vm`, which migration `migrationId` handed it? Asked before `cont --force` resumes a VM whose
 * handoff was never confirmed; answered only to the source that VM arrived from (else Error
 * ERR_FORBIDDEN).
 */
export interface QueryMsg {
  type: MsgType.Query;
  migrationId: string;
  vm: string;
}

/** D→S, answer to Query: the state of the copy held here, or `absent`. */
export interface QueryResultMsg {
  type: MsgType.QueryResult;
  state: QueryState;
}

/** Every message, discriminated by `type`. */
/**
 * S→D: disk blocks (4 KiB each), `blocks[i]`'s bytes at i × 4096 in the payload. `requestId` ≥ 1
 * answers DiskRequest `id` (post-copy); `ackId` ≥ 1 asks for a DiskAck once the blocks are in
 * the destination's image (mirror: the guest's write waits for it); 0 = neither.
 */
export interface DiskBlocksMsg {
  type: MsgType.DiskBlocks;
  requestId: number;
  ackId: number;
  blocks: Uint32Array;
  data: Uint8Array;
}

/** D→S: the blocks of DiskBlocks `ackId` are in this side's image (mirror). */
export interface DiskAckMsg {
  type: MsgType.DiskAck;
  id: number;
}

/** D→S, storage post-copy: the guest reads these absent blocks; answered by DiskBlocks with requestId = id. */
export interface DiskRequestMsg {
  type: MsgType.DiskRequest;
  id: number;
  blocks: Uint32Array;
}

/**
 * S→D, storage post-copy switchover (before PostcopyStart): the blocks the destination lacks,
 * 1 bit per block (set = absent), ceil(blockCount / 8) bytes.
 */
export interface DiskAbsentMsg {
  type: MsgType.DiskAbsent;
  bitmap: Uint8Array;
}

/** D→S, storage post-copy recovery (after Missing): the blocks still absent here, 1 bit per block. */
export interface DiskMissingMsg {
  type: MsgType.DiskMissing;
  bitmap: Uint8Array;
}

/**
 * S→D, shared storage with `disk-prehash`, while the VM still runs: the blocks allocated when
 * the source marked its image (its dirty log cleared, then the image written back), 1 bit per
 * block. The destination hashes those blocks of the shared image now, not in the downtime.
 */
export interface DiskAllocatedMsg {
  type: MsgType.DiskAllocated;
  bitmap: Uint8Array;
}

/** D→S, shared storage: the pre-hash DiskAllocated asked for is done, or failed (then the stop point hashes the image whole), after `ms`. */
export interface DiskPrehashedMsg {
  type: MsgType.DiskPrehashed;
  ms: number;
  outcome: 'done' | 'failed';
}

/**
 * S→D, shared storage, at the stop point before StopCopyEnd: blocks written since the mark
 * (one message per up to MAX_DISK_WRITTEN_BLOCKS): the destination re-hashes only these.
 */
export interface DiskWrittenMsg {
  type: MsgType.DiskWritten;
  blocks: Uint32Array;
}

/**
 * S→D (`fault-on-demand`, a hybrid migration): start the fault thread now. Hybrid and auto
 * migrations need the fault channel only once they switch to post-copy: the destination starts
 * its fault thread when asked, not at Setup, so SetupDone does not wait for it and a migration
 * that ends as pre-copy never starts it. Once per migration.
 */
export interface FaultOpenMsg {
  type: MsgType.FaultOpen;
}

/**
 * D→S, the answer to FaultOpen: where the fault thread listens and the token its Attach fault
 * must carry (as SetupDone's faultPort and faultToken). Neither: no thread could start, and the
 * fault channel attaches at the main port.
 */
export interface FaultListeningMsg {
  type: MsgType.FaultListening;
  faultPort?: number;
  faultToken?: string;
}

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
  | RoundAckMsg
  | RecordMsg
  | CountersignatureMsg
  | QueryMsg
  | QueryResultMsg
  | DiskBlocksMsg
  | DiskAckMsg
  | DiskRequestMsg
  | DiskAbsentMsg
  | DiskMissingMsg
  | DiskAllocatedMsg
  | DiskPrehashedMsg
  | DiskWrittenMsg
  | FaultOpenMsg
  | FaultListeningMsg;

/** The message interface for a type number. */
export type MessageOf<T extends Message['type']> = Extract<Message, { type: T }>;
