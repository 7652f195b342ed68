/**
 * The incoming migration's phases (validated by StateMachine), mirroring the source's:
 *
 *   none → setup → receiving → ready → running → completed
 *            └────────┴──────────┴──→ failed      (the VM is discarded here; the source owns it)
 *
 * `ready` = every page, the CPU and the device state arrived and the digest matched; the VM
 * waits paused for Handoff. Only Handoff moves it to `running`: until then the source owns
 * the VM, so losing the connection in `ready` discards this copy. (Post-copy adds a faulting
 * `running` phase with issue 5.)
 */
import type { TransitionTable } from '@livemig/shared';

export type DestStatus = 'none' | 'setup' | 'receiving' | 'ready' | 'running' | 'completed' | 'failed';

export const DEST_TRANSITIONS: TransitionTable<DestStatus> = {
  none: ['setup', 'failed'],
  setup: ['receiving', 'failed'],
  receiving: ['ready', 'failed'],
  ready: ['running', 'failed'],
  running: ['completed', 'failed'],
  completed: [],
  failed: [],
};

/** Phases in which this side holds a copy it must discard on failure. */
export const DEST_DISCARDS_ON_FAILURE: ReadonlySet<DestStatus> = new Set(['setup', 'receiving', 'ready']);
