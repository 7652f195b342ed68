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
 * Modules, one concern each:
 *
 * - version.ts: protocol versions;
 * - frame.ts: the header layout (the one place it is written down), writeHeader/readHeader;
 * - messages.ts, re-exporting message-types.ts (MsgType, the messages, the Message union),
 *   message-spec.ts (MESSAGE_SPEC and its lookups) and message-factories.ts (`msg.*`);
 * - schema.ts (metadata validation), meta-codec.ts (msgpack);
 * - encode.ts: the pure encoder;
 * - header-parser.ts: the pure header parser; frame-decoder.ts: the streaming decoder around it;
 *   page-sink.ts: where a receiver's Pages bytes go;
 * - handshake.ts: version and capability negotiation;
 * - framed-socket.ts: FramedSocket over TCP, made of framed-socket-options.ts, frame-sender.ts,
 *   frame-receiver.ts, keepalive.ts and socket-handle.ts; framed-server.ts: createFramedServer.
 *
 * Every connection starts with the handshake; either side may send `Heartbeat` when it has sent
 * nothing for a while, `Error` before closing on a failure, and the source `Cancel` at any point
 * before `Handoff`. The order of messages in each mode — pre-copy, post-copy and hybrid, the
 * fault connection, recovery — is drawn in docs/protocol.md (a test checks a real migration's
 * frames against those diagrams), with the message table generated from MESSAGE_SPEC.
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
export * from './page-sink.ts';
export * from './page-encodings.ts';
export * from './header-parser.ts';
export * from './framed-socket.ts';
export {
  resolveFramedSocketOptions,
  type FramedConnectOptions,
  type FramedSocketOptions,
  type ResolvedFramedSocketOptions,
} from './framed-socket-options.ts';
export { createFramedServer } from './framed-server.ts';
