/**
 * The outgoing migration's phases and the moves between them (validated by StateMachine).
 *
 *   pre-copy:  none → setup → precopy → stopcopy → handoff → completed
 *   post-copy: none → setup → postcopy-start → handoff → postcopy ⇄ postcopy-paused → completed
 *   hybrid:    none → setup → precopy → postcopy-start → handoff → postcopy … → completed
 *              (or, when it converges, on as pre-copy: precopy → stopcopy → handoff)
 *   failures:  any phase up to handoff → failed | cancelled   (the VM resumes on the source)
 *              handoff, postcopy, postcopy-paused → failed   (the VM is on the destination,
 *                                                             or lost: never resumed here)
 *
 * Until `handoff` the source owns the VM and every failure rolls back to "running on the
 * source". Sending Handoff is the point of no return; in post-copy the source still holds the
 * pages the destination lacks until it says Complete.
 */
import type { TransitionTable } from '@livemig/shared';

export type SourceStatus =
  | 'none'
  | 'setup'
  | 'precopy'
  | 'stopcopy'
  | 'postcopy-start'
  | 'handoff'
  | 'postcopy'
  | 'postcopy-paused'
  | 'completed'
  | 'failed'
  | 'cancelled';

export const SOURCE_TRANSITIONS: TransitionTable<SourceStatus> = {
  none: ['setup', 'failed', 'cancelled'],
  setup: ['precopy', 'postcopy-start', 'failed', 'cancelled'],
  precopy: ['stopcopy', 'postcopy-start', 'failed', 'cancelled'],
  stopcopy: ['handoff', 'failed', 'cancelled'],
  'postcopy-start': ['handoff', 'failed', 'cancelled'],
  handoff: ['completed', 'postcopy', 'failed'],
  postcopy: ['completed', 'postcopy-paused', 'failed'],
  'postcopy-paused': ['postcopy', 'failed'],
  completed: [],
  failed: [],
  cancelled: [],
};

/** Phases in which the source still owns the VM (a failure resumes it here). */
export const SOURCE_OWNS_VM: readonly SourceStatus[] = ['none', 'setup', 'precopy', 'stopcopy', 'postcopy-start'];

/** Phases past the point of no return that can still fail (never cancel). */
export const SOURCE_PAST_HANDOFF: readonly SourceStatus[] = ['handoff', 'postcopy', 'postcopy-paused'];
