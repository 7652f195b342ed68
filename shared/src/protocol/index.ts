/**
 * `@livemig/shared/protocol` — the data channel between two agents: frames, messages, the pure
 * codec, the streaming decoder, the handshake and the framed socket.
 *
 * Frame (frame.ts): `| magic "LM" | version u8 | type u8 | flags u16 | metaLen u32 | payloadLen u32 |
 * meta (msgpack-lite map) | payload (raw bytes) |`, little-endian, 14-byte header. Page bytes only
 * ever travel in the raw payload. Errors are MigrationErrors with stable codes (errors.ts
 * ERROR_CODES is the one table): ERR_BAD_MAGIC, ERR_PROTOCOL_VERSION, ERR_UNKNOWN_MESSAGE,
 * ERR_FRAME_TOO_LARGE, ERR_BAD_METADATA (also unknown header flags), ERR_BAD_PAYLOAD,
 * ERR_TRUNCATED, ERR_UNEXPECTED_MESSAGE, ERR_PAGE_OUT_OF_RANGE, ERR_BUFFER_OVERFLOW,
 * ERR_IDLE_TIMEOUT, ERR_HANDSHAKE, ERR_CONNECTION, ERR_PEER_ABORTED (the peer sent Error),
 * ERR_INVALID_ARGUMENT (bad options or encoder input), ERR_INTERNAL (a listener or sink threw a
 * non-MigrationError). docs/protocol.md has the message table.
 *
 * Modules: version.ts (versions), frame.ts (header layout), messages.ts (MsgType, messages,
 * MESSAGE_SPEC, `msg.*` factories), schema.ts (metadata validation), meta-codec.ts (msgpack),
 * encode.ts (pure encoder), frame-decoder.ts (streaming decoder, PageSink), handshake.ts
 * (negotiation), framed-socket.ts (FramedSocket over TCP).
 *
 * Every connection starts with the handshake; either side may send `Heartbeat` when it has sent
 * nothing for a while, `Error` before closing on a failure, and the source `Cancel` at any point
 * before `Handoff`.
 *
 * ## Pre-copy
 *
 * ```mermaid
 * sequenceDiagram
 *   participant S as source
 *   participant D as destination
 *   S->>D: Hello {versions, agentId, capabilities}
 *   D->>S: Welcome {version, agentId, capabilities ∩}
 *   S->>D: Setup {migrationId, mode: precopy, vm} + bitmap
 *   D->>S: SetupDone {preparedMs}
 *   loop round k = 0, 1, … until expected downtime ≤ limit
 *     S->>D: Pages {round k, requestId 0, pages, kinds} + raw pages (×N)
 *     S->>D: RoundEnd {round k, pages, bytes}
 *   end
 *   Note over S: pause vCPU, final harvest
 *   S->>D: Pages (remaining dirty pages)
 *   S->>D: CpuState {steps} + registers
 *   S->>D: DeviceState {state}
 *   S->>D: StopCopyEnd {digest}
 *   Note over D: load state, digest must match
 *   D->>S: Ready {digest}
 *   S->>D: Handoff {}
 *   Note over D: resume vCPU (destination now owns the VM)
 *   D->>S: Resumed {handoffToResumeMs}
 *   S->>D: Complete {}
 * ```
 *
 * ## Post-copy
 *
 * ```mermaid
 * sequenceDiagram
 *   participant S as source
 *   participant D as destination
 *   S->>D: Hello
 *   D->>S: Welcome (capabilities include postcopy)
 *   S->>D: Setup {mode: postcopy, vm} + bitmap
 *   D->>S: SetupDone
 *   Note over S: pause vCPU
 *   S->>D: CpuState + registers
 *   S->>D: DeviceState
 *   S->>D: StopCopyEnd {digest}
 *   D->>S: Ready {digest}
 *   S->>D: Handoff
 *   Note over D: resume at once; absent pages fault
 *   D->>S: Resumed {handoffToResumeMs}
 *   par background push
 *     loop until every page sent
 *       S->>D: Pages {requestId 0} + raw pages
 *     end
 *   and faults
 *     D->>S: PageRequest {id ≥ 1, pages}
 *     S->>D: Pages {requestId = id} + raw pages
 *   end
 *   D->>S: Complete (every page present)
 *   S->>D: Complete
 * ```
 *
 * ## Hybrid (pre-copy, then post-copy)
 *
 * ```mermaid
 * sequenceDiagram
 *   participant S as source
 *   participant D as destination
 *   S->>D: Hello
 *   D->>S: Welcome (postcopy)
 *   S->>D: Setup {mode: hybrid, vm} + bitmap
 *   D->>S: SetupDone
 *   loop a few pre-copy rounds
 *     S->>D: Pages {round k} + raw pages
 *     S->>D: RoundEnd {round k}
 *   end
 *   Note over S: pause vCPU (dirty pages stay behind)
 *   S->>D: CpuState + registers
 *   S->>D: DeviceState
 *   S->>D: StopCopyEnd {digest}
 *   D->>S: Ready
 *   S->>D: Handoff
 *   D->>S: Resumed
 *   par background push of the still-dirty pages
 *     S->>D: Pages {requestId 0}
 *   and faults
 *     D->>S: PageRequest {id, pages}
 *     S->>D: Pages {requestId = id}
 *   end
 *   D->>S: Complete
 *   S->>D: Complete
 * ```
 *
 * (In post-copy the digest in StopCopyEnd/Ready is the digest expected once every page has
 * arrived; the destination checks it at Complete.)
 *
 * ## Receiver (destination) states
 *
 * ```mermaid
 * stateDiagram-v2
 *   [*] --> handshake: connection accepted
 *   handshake --> setup: Hello → Welcome
 *   handshake --> failed: ERR_PROTOCOL_VERSION / ERR_HANDSHAKE
 *   setup --> receiving: Setup → SetupDone
 *   receiving --> receiving: Pages / RoundEnd
 *   receiving --> stopcopy: CpuState / DeviceState
 *   stopcopy --> stopcopy: Pages / CpuState / DeviceState
 *   stopcopy --> ready: StopCopyEnd, digest ok → Ready
 *   stopcopy --> failed: digest mismatch → Error
 *   ready --> running: Handoff → resume → Resumed
 *   running --> postcopy: pages absent
 *   postcopy --> postcopy: fault → PageRequest / Pages
 *   postcopy --> completed: all pages present → Complete
 *   running --> completed: Complete
 *   setup --> cancelled: Cancel
 *   receiving --> cancelled: Cancel
 *   stopcopy --> cancelled: Cancel
 *   ready --> cancelled: Cancel
 *   receiving --> failed: bad frame / idle timeout / connection lost
 *   ready --> failed: connection lost (source still owns the VM)
 *   completed --> [*]
 *   cancelled --> [*]
 *   failed --> [*]
 * ```
 *
 * Frames arriving in a state that does not expect them are the receiver's to reject with
 * ERR_UNEXPECTED_MESSAGE (the decoder already rejects messages travelling the wrong direction
 * when given a `role`).
 */
export * from './version.ts';
export * from './frame.ts';
export * from './messages.ts';
export * from './schema.ts';
export * from './meta-codec.ts';
export * from './encode.ts';
export * from './frame-decoder.ts';
export * from './handshake.ts';
export * from './framed-socket.ts';
