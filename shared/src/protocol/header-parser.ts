/**
 * The frame header parser: 14 bytes in, the header's fields and its MESSAGE_SPEC row out, or a
 * MigrationError naming what is wrong. Pure (no state, no I/O): the streaming decoder calls it
 * once per frame, and because every check that the header alone allows happens here — magic,
 * version, type, flags, direction, both lengths against the limits, the message's payload
 * rule — nothing of a frame's body is buffered before its header passed them all (ws
 * `haveLength()`, mplex's MAX_MSG_SIZE check at header time). The layout itself is frame.ts's.
 *
 * Checks, in order, and the code each failure carries:
 *
 * | check                                                   | code                     |
 * | ------------------------------------------------------- | ------------------------ |
 * | the first two bytes are "LM"                            | `ERR_BAD_MAGIC`          |
 * | the version is one of `rules.versions`                  | `ERR_PROTOCOL_VERSION`   |
 * | the type has a MESSAGE_SPEC row (0 never does)          | `ERR_UNKNOWN_MESSAGE`    |
 * | no flag bit outside KNOWN_FLAGS                         | `ERR_BAD_METADATA`       |
 * | the message may travel towards `rules.role`             | `ERR_UNEXPECTED_MESSAGE` |
 * | header + meta + payload ≤ maxFrameBytes, meta ≤ maxMeta | `ERR_FRAME_TOO_LARGE`    |
 * | metaLen ≥ 1 (metadata is always one msgpack map)        | `ERR_BAD_METADATA`       |
 * | the payload length fits the message's payload rule      | `ERR_BAD_PAYLOAD`        |
 */
import { MigrationError } from '../errors.ts';
import { HEADER_BYTES, KNOWN_FLAGS, MAGIC_0, MAGIC_1, hasMagic, readHeader, type FrameHeader } from './frame.ts';
import { mayReceive, specOf, type MessageSpec } from './message-spec.ts';

/** What a header is checked against. */
export interface HeaderRules {
  /** Largest frame (header + meta + payload) accepted. */
  maxFrameBytes: number;
  /** Largest metadata accepted. */
  maxMetaBytes: number;
  /** Header versions accepted. */
  versions: readonly number[];
  /** The receiving end ('any': no direction check). */
  role: 'source' | 'dest' | 'any';
  /** Current page size: a Pages payload must be whole pages. */
  pageSize: number;
}

/** A header that passed every check, with the spec row of its type. */
export interface ParsedHeader extends FrameHeader {
  spec: MessageSpec;
}

/**
 * Parse and check the header at `bytes[at, at + 14)`. Returns undefined when fewer than 14 bytes
 * are there (incomplete, not invalid); throws a MigrationError (table above) for a header that
 * must be rejected.
 */
export function parseHeader(bytes: Uint8Array, at: number, rules: HeaderRules): ParsedHeader | undefined {
  if (bytes.length - at < HEADER_BYTES) return undefined;
  if (!hasMagic(bytes, at)) {
    throw new MigrationError(
      'ERR_BAD_MAGIC',
      `bad magic 0x${hex2(bytes[at]!)}${hex2(bytes[at + 1]!)} (want 0x${hex2(MAGIC_0)}${hex2(MAGIC_1)}): not a livemig peer`,
    );
  }
  const header = readHeader(bytes, at);
  const { version, type, flags, metaLen, payloadLen } = header;
  if (!rules.versions.includes(version)) {
    throw new MigrationError(
      'ERR_PROTOCOL_VERSION',
      `frame of protocol version ${version}; this agent accepts ${rules.versions.join(', ')}`,
    );
  }
  const spec = specOf(type);
  if (spec === undefined) throw new MigrationError('ERR_UNKNOWN_MESSAGE', `unknown message type ${type}`);
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new MigrationError('ERR_BAD_METADATA', `${spec.name} frame has unknown header flags 0x${flags.toString(16)}`);
  }
  if (rules.role !== 'any' && !mayReceive(type, rules.role)) {
    throw new MigrationError('ERR_UNEXPECTED_MESSAGE', `${spec.name} (${spec.direction}) sent to the ${rules.role}`);
  }
  const total = HEADER_BYTES + metaLen + payloadLen;
  if (total > rules.maxFrameBytes) {
    throw new MigrationError(
      'ERR_FRAME_TOO_LARGE',
      `${spec.name} frame of ${total} bytes exceeds the ${rules.maxFrameBytes}-byte limit`,
    );
  }
  if (metaLen > rules.maxMetaBytes) {
    throw new MigrationError(
      'ERR_FRAME_TOO_LARGE',
      `${spec.name} metadata of ${metaLen} bytes exceeds the ${rules.maxMetaBytes}-byte limit`,
    );
  }
  if (metaLen === 0) throw new MigrationError('ERR_BAD_METADATA', `${spec.name} frame has no metadata`);
  const rule = spec.payload;
  if (rule.kind === 'none' && payloadLen !== 0) {
    throw new MigrationError('ERR_BAD_PAYLOAD', `${spec.name} carries no payload, got ${payloadLen} bytes`);
  }
  if (rule.kind === 'bytes' && (payloadLen > rule.maxBytes || (payloadLen === 0 && !rule.optional))) {
    throw new MigrationError('ERR_BAD_PAYLOAD', `${spec.name} payload of ${payloadLen} bytes is not allowed`);
  }
  // A Pages payload is raw pages plus encoded ones (page-encodings.ts): its exact length is
  // checked against the metadata before any byte of it is buffered (the spec's check).
  return { version, type, flags, metaLen, payloadLen, spec };
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
