/**
 * The handshake, as pure functions (the agents do the I/O):
 *
 * 1. source → `Hello { versions, agentId, capabilities }` (the first frame on a connection);
 * 2. destination: `negotiate(local, hello)` → `Welcome { version, agentId, capabilities }`:
 *    the highest version both support (none → `ERR_PROTOCOL_VERSION`), and the capabilities both
 *    listed *and* this build knows (an unknown capability is dropped, never an error);
 * 3. source: `acceptWelcome(local, welcome)` checks the destination chose something the source
 *    offered (`ERR_HANDSHAKE` otherwise) and yields the session parameters.
 *
 * Whatever fails, the side that noticed sends `Error { code, message }` and closes.
 */
import { MigrationError } from '../errors.ts';
import { msg } from './message-factories.ts';
import type { HelloMsg, WelcomeMsg } from './message-types.ts';
import { SUPPORTED_VERSIONS } from './version.ts';

/**
 * Capabilities this build understands, with what each enables. A peer may list others (newer
 * builds); they are negotiated off.
 */
export const KNOWN_CAPABILITIES = Object.freeze({
  postcopy: 'The destination can resume before all pages arrived and fetch absent pages with PageRequest.',
  'fault-channel': 'Post-copy page requests and their answers use a second TCP connection.',
  'fault-thread':
    "With fault-channel: the destination's fault channel is a thread of its own, listening on its own port; SetupDone names the port and a token (faultPort, faultToken), and the source's fault channel connects there and says Attach fault with the token.",
  'fault-on-demand':
    "With fault-thread, in a hybrid migration: the destination starts its fault thread only when the source asks (FaultOpen, once it may switch to post-copy) and answers where it listens (FaultListening), instead of before SetupDone: a hybrid's setup does not wait for the thread, and one that ends as pre-copy (--mode auto choosing pre-copy) never starts it.",
  multifd:
    "Pre-copy pages may also travel over parallel bulk channels: Setup asks for a number of channels (channels), SetupDone names the destination's port for each (multifdPorts) and a token (multifdToken); each channel carries raw and zero pages of the rounds, and a round ends when every channel's marker arrived (the destination's barrier) before its RoundAck.",
  'setup-bitmap': 'Setup may carry a bitmap of possibly non-zero pages; the rest are zero and never sent.',
  'zero-pages': 'Pages batches may mark pages as zero (kind 1) instead of sending their bytes.',
  disk: 'The VM may have a disk (Setup.disk), migrated shared, copied, mirrored (DiskBlocks, DiskAck) or on demand (DiskAbsent, DiskRequest, DiskMissing).',
  'disk-prehash':
    'Shared storage: while the VM runs, the source says which blocks were allocated (DiskAllocated) and the destination hashes them (DiskPrehashed); at the stop point only the blocks written since are re-hashed (DiskWritten).',
  xbzrle:
    'Pages batches may carry XBZRLE deltas (kind 2) of a page against the copy the destination holds, before its VM runs.',
  dedup:
    'Pages batches may carry references (kind 3) to a page the destination received earlier with the same content, before its VM runs.',
  'dedup-host':
    'With dedup: Setup may ask (hostContent) for the SHA-256 of up to 16384 page contents the destination already holds in its other VMs; SetupDone carries them, and a reference to page count + k (kind 3) copies content k.',
  compress: 'Pages batches may carry pages in one compressed block (kind 4; lz4 or brotli, named in the batch).',
  'signed-record':
    'At the end the source sends its signed migration record (Record) and the destination answers with its countersignature or refusal (Countersignature). Offered only by agents with a key (--pki).',
} as const);

export type Capability = keyof typeof KNOWN_CAPABILITIES;

/** One side's handshake settings. */
export interface HandshakeConfig {
  agentId: string;
  /** Capabilities this side offers (unknown names are ignored). */
  capabilities: readonly string[];
  /** Versions this side speaks. @default SUPPORTED_VERSIONS */
  versions?: readonly number[];
}

/** What both sides agreed on. */
export interface Negotiated {
  version: number;
  localAgentId: string;
  remoteAgentId: string;
  capabilities: ReadonlySet<Capability>;
}

/** True when `name` is a capability this build knows. */
export function isKnownCapability(name: string): name is Capability {
  return Object.hasOwn(KNOWN_CAPABILITIES, name);
}

/** The local Hello to send first. */
export function makeHello(local: HandshakeConfig): HelloMsg {
  return msg.hello({
    agentId: local.agentId,
    capabilities: local.capabilities.filter(isKnownCapability),
    versions: local.versions ?? SUPPORTED_VERSIONS,
  });
}

/**
 * Destination side: answer a Hello. Picks the highest common version (throws
 * `ERR_PROTOCOL_VERSION` when there is none) and the capabilities known to this build and listed
 * by both, in this side's order.
 */
export function negotiate(local: HandshakeConfig, remote: HelloMsg): WelcomeMsg {
  const ours = local.versions ?? SUPPORTED_VERSIONS;
  const common = remote.versions.filter((v) => ours.includes(v));
  if (common.length === 0) {
    throw new MigrationError(
      'ERR_PROTOCOL_VERSION',
      `peer ${remote.agentId} speaks protocol version(s) ${remote.versions.join(', ')}; this agent speaks ${ours.join(', ')}`,
    );
  }
  const version = Math.max(...common);
  const theirs = new Set(remote.capabilities);
  const capabilities = [...new Set(local.capabilities)].filter((c) => isKnownCapability(c) && theirs.has(c));
  return msg.welcome({ version, agentId: local.agentId, capabilities });
}

/**
 * Source side: check the Welcome against what we offered. Throws `ERR_PROTOCOL_VERSION` if the
 * chosen version is not ours, `ERR_HANDSHAKE` if a capability we did not offer was switched on.
 */
export function acceptWelcome(local: HandshakeConfig, welcome: WelcomeMsg): Negotiated {
  const ours = local.versions ?? SUPPORTED_VERSIONS;
  if (!ours.includes(welcome.version)) {
    throw new MigrationError(
      'ERR_PROTOCOL_VERSION',
      `peer ${welcome.agentId} chose protocol version ${welcome.version}; this agent speaks ${ours.join(', ')}`,
    );
  }
  const offered = new Set(local.capabilities.filter(isKnownCapability));
  const capabilities = new Set<Capability>();
  for (const c of welcome.capabilities) {
    if (!isKnownCapability(c) || !offered.has(c)) {
      throw new MigrationError(
        'ERR_HANDSHAKE',
        `peer ${welcome.agentId} enabled capability "${c}" that was not offered`,
      );
    }
    capabilities.add(c);
  }
  return { version: welcome.version, localAgentId: local.agentId, remoteAgentId: welcome.agentId, capabilities };
}

/** Destination side: the session parameters matching the Welcome it sent. */
export function sessionFromWelcome(local: HandshakeConfig, hello: HelloMsg, welcome: WelcomeMsg): Negotiated {
  return {
    version: welcome.version,
    localAgentId: local.agentId,
    remoteAgentId: hello.agentId,
    capabilities: new Set(welcome.capabilities.filter(isKnownCapability)),
  };
}
