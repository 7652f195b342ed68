/**
 * What an agent says about the VMs it hosts: this module owns the operator-visible VM states and
 * the VmInfo record. They belong to the hosting layer (VmHost keeps them and enforces who may
 * do what in each); the control channel (control/messages.ts) imports them to describe its
 * commands and events, never the other way round.
 *
 *   running        the vCPU runs here
 *   paused         stopped here by the operator (`stop`), resumable with `cont`
 *   migrating-out  a migration to another agent is in flight; operators must cancel it first
 *   incoming       a migration into this agent is in flight; the VM is not runnable yet
 *   migrated       handed off: the VM runs elsewhere (a retired record, or a paused copy whose
 *                  handoff confirmation was lost — `cont --force` only if the other side does not run it)
 */
import type { AddressMode } from './net/address-mover.ts';

/** Where a hosted VM is, as operators see it. */
export type VmState = 'running' | 'paused' | 'migrating-out' | 'incoming' | 'migrated';

/** One hosted (or retired) VM, as query-vms and the VM commands return it. */
export interface VmInfo {
  name: string;
  state: VmState;
  steps: number;
  memoryBytes: number;
  workload: string;
  /** The VM's NIC: its address, how this host moves it, and whether this host holds it now. */
  nic?: { address: string; mac: string; mode: AddressMode; taken: boolean };
  /** The VM's disk: its size, the bytes written to it so far, and its image file on this host. */
  disk?: { sizeBytes: number; allocatedBytes: number; image: string };
}
