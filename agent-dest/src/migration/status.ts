/**
 * The incoming migration's phases (validated by StateMachine and by receiver.ts), mirroring the
 * source's:
 *
 *   none → setup → receiving → ready → running → completed                      (pre-copy, or a
 *                                                                               hybrid that converged)
 *                                   └→ postcopy ⇄ postcopy-paused → completed   (post-copy, hybrid)
 *            └────────┴──────────┴──→ failed   (before Handoff: the copy here is discarded)
 *
 * `ready` = pre-copy: every page, the CPU and the device state arrived and every digest matched;
 * post-copy: CPU and device state arrived and matched, and the destination knows which pages
 * are absent. The VM waits paused for Handoff; until then the source owns it, so losing the
 * source in `ready` discards this copy. `postcopy` = the VM runs here and faults on absent pages
 * while the source pushes them; `postcopy-paused` = the link broke: the VM runs but blocks on
 * any absent page until the source reconnects and the migration resumes.
 */
import type { TransitionTable } from '@livemig/shared';

export type DestStatus =
  'none' | 'setup' | 'receiving' | 'ready' | 'running' | 'postcopy' | 'postcopy-paused' | 'completed' | 'failed';

export const DEST_STATUSES: readonly DestStatus[] = [
  'none',
  'setup',
  'receiving',
  'ready',
  'running',
  'postcopy',
  'postcopy-paused',
  'completed',
  'failed',
];

export const DEST_TRANSITIONS: TransitionTable<DestStatus> = {
  none: ['setup', 'failed'],
  setup: ['receiving', 'failed'],
  receiving: ['ready', 'failed'],
  ready: ['running', 'postcopy', 'failed'],
  running: ['completed', 'failed'],
  postcopy: ['completed', 'postcopy-paused', 'failed'],
  'postcopy-paused': ['postcopy', 'failed'],
  completed: [],
  failed: [],
};

/** Phases in which this side holds a copy it must discard on failure (the source still owns the VM). */
export const DEST_DISCARDS_ON_FAILURE: readonly DestStatus[] = ['none', 'setup', 'receiving', 'ready'];

/** Phases in which the VM runs (or is about to run) here: a failure leaves it here. */
export const DEST_OWNS_VM: readonly DestStatus[] = ['running', 'postcopy', 'postcopy-paused'];
