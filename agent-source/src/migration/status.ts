/**
 * The outgoing migration's phases and the moves between them (validated by StateMachine).
 *
 *   none → setup → precopy → stopcopy → handoff → completed
 *            │        │          │          └────→ failed      (handoff sent, never confirmed)
 *            └────────┴──────────┴──→ failed | cancelled       (the VM resumes on the source)
 *
 * Until `handoff` the source owns the VM and every failure rolls back to "running on the
 * source". Sending Handoff is the point of no return. (Post-copy phases arrive with issue 5.)
 */
import type { TransitionTable } from '@livemig/shared';

export type SourceStatus = 'none' | 'setup' | 'precopy' | 'stopcopy' | 'handoff' | 'completed' | 'failed' | 'cancelled';

export const SOURCE_TRANSITIONS: TransitionTable<SourceStatus> = {
  none: ['setup', 'failed', 'cancelled'],
  setup: ['precopy', 'failed', 'cancelled'],
  precopy: ['stopcopy', 'failed', 'cancelled'],
  stopcopy: ['handoff', 'failed', 'cancelled'],
  handoff: ['completed', 'failed'],
  completed: [],
  failed: [],
  cancelled: [],
};

/** Phases in which the source still owns the VM (a failure resumes it here). */
export const SOURCE_OWNS_VM: ReadonlySet<SourceStatus> = new Set(['none', 'setup', 'precopy', 'stopcopy']);
