/**
 * Protocol versions. The frame header carries the sender's version in every frame; the Hello /
 * Welcome exchange picks the highest version both sides support. An agent supports its current
 * version and the previous one (so agents can be upgraded one at a time, as with
 * cloud-hypervisor's `supported_protocol_versions()`); anything else is rejected with
 * `ERR_PROTOCOL_VERSION`.
 */

/** The version this build speaks natively. */
export const PROTOCOL_VERSION = 1;

/**
 * Every protocol version that ever existed, with what changed. A version missing here never
 * existed, so it cannot be "previous". Add a row when the wire changes incompatibly.
 */
export const VERSION_HISTORY: Readonly<Record<number, string>> = Object.freeze({
  1: 'Initial protocol: 14-byte frame header, msgpack metadata, raw page payloads.',
});

/**
 * The versions this build accepts, newest first: the current one and the previous one when it
 * exists (today only version 1 exists).
 */
export const SUPPORTED_VERSIONS: readonly number[] = Object.freeze(
  [PROTOCOL_VERSION, PROTOCOL_VERSION - 1].filter((v) => v in VERSION_HISTORY),
);

/** True when `version` is one this build can speak. */
export function isSupportedVersion(version: number, supported: readonly number[] = SUPPORTED_VERSIONS): boolean {
  return supported.includes(version);
}
