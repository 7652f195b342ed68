/**
 * How a VM's network address follows it from host to host. The hosting agent owns the address
 * while it runs the VM: the source gives it up at handoff and the destination takes it, so a
 * client keeps talking to the same ip:port and never learns the VM moved.
 *
 * Two movers:
 *   loopback  one machine, no privileges (the demo): the address is a local ip:port; moving it
 *             is the source closing its socket and the destination binding the same ip:port.
 *             The mover itself has nothing to do (loopback.ts).
 *   macvlan   namespaces or containers with NET_ADMIN: the VM has its own MAC and IP on a
 *             macvlan over the host's interface; the destination prepares the link (down) during
 *             setup, brings it up at handoff — the kernel sends a gratuitous ARP at once
 *             (arp_notify) — and re-announces a few times with back-off, like QEMU's announce-*;
 *             the source takes its link down (macvlan.ts).
 * The socket that carries the VM's datagrams is the NIC backend's; it binds after take().
 */

/** Which mechanism moved the address (the report says it). */
export type AddressMode = 'loopback' | 'macvlan';

/** The VM's network identity. */
export interface VmAddress {
  /** IPv4, dotted quad. */
  ip: string;
  port: number;
  /** Locally administered unicast MAC, "02:…". */
  mac: string;
}

export interface AddressMover {
  readonly mode: AddressMode;
  /** The VM's ip:port can be bound once prepared, before take() (the IP is configured, just not reachable). */
  readonly bindBeforeTake: boolean;
  /** Everything short of taking the address (macvlan: create the link, down, with the IP). Idempotent. */
  prepare(): Promise<void>;
  /** Make the address reachable here; announcing may go on in the background. Resolves with how long it took. */
  take(): Promise<{ ms: number }>;
  /**
   * Get ready to give the address up, so that give() — inside the handoff, which clients see as
   * downtime — has least to do (macvlan: fork the link-down now). The source calls it as a
   * migration starts. Idempotent; nothing to undo if the migration goes no further.
   */
  prepareGive(): void;
  /** Stop answering for the address here (and stop announcing). Safe when not taken. */
  give(): Promise<void>;
  /** Undo prepare (remove the link). Idempotent; safe after any failure. */
  dispose(): Promise<void>;
}

export { macForIp } from '../../vm/nic/mac.ts';
