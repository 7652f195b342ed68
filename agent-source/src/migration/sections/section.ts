/**
 * A section: one migratable part of a VM behind one interface (QEMU's SaveVMHandlers, Cloud
 * Hypervisor's migratable components). The engine (phases/) iterates over sections and knows
 * none of their internals: the switchover rule sums their `pending()`, stop-and-copy calls
 * every `complete()`, verification compares every `digest()` with the destination's. Adding a
 * section (a disk, next) touches no other section.
 *
 *   setup        contribute to the Setup message (RAM: the map of possibly non-zero pages)
 *   startRound / iterate(budget) / endRound
 *                pre-copy: send some of what is dirty within a byte budget; the engine calls
 *                iterate until every section says its round is done, or a switchover request
 *                cuts the round short
 *   pending      bytes still to send if the VM stopped now (the switchover rule's input)
 *   complete     the VM is paused: send the rest (pre-copy) or the state that must be there
 *                before the destination resumes (post-copy switchover)
 *   digest       what this section sent, hashed on this side (the destination hashes what it
 *                loaded, on its side: never one side's value copied into the other's field)
 *
 * Post-copy (what is absent at switchover, serving a request, the background push, resync after
 * a reconnect) has two implementations, RAM's (RamSection: absentMap, push, serveFaults,
 * resync) and the disk's (DiskSection: absentMessage, push, resync, with its requests routed on
 * the main channel); the phases name both, because their wire forms differ (pages with a fault
 * channel and a presence map the vCPU blocks on; blocks whose reads the device holds).
 */
import type { SetupMsg } from '@livemig/shared/protocol';

export interface OutgoingSection {
  /** The section's name on the wire (digest keys) and in logs. */
  readonly name: string;
  /** Fill in this section's part of the Setup message. */
  setup?(setup: SetupMsg): void;
  /** Pre-copy: begin round `round` (0 = the first full pass). */
  startRound?(round: number): void;
  /** Send at most about `budgetBytes` of this round; resolves true once the round is done. */
  iterate?(budgetBytes: number): Promise<boolean>;
  /** After a round: sync the dirty log (what the next round sends). */
  endRound?(): void;
  /** Bytes still to send if the VM stopped now. */
  pending(): number;
  /** The VM is paused. `precopy`: send everything left; `postcopy`: what must be there before resume. */
  complete(how: 'precopy' | 'postcopy'): Promise<void>;
  /** Hash of what this section sent (hex), or undefined before anything final was sent. */
  digest(): string | undefined;
}
