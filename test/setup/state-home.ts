/**
 * Every test file gets a state home of its own: agents started with --pki keep an audit log in
 * $XDG_STATE_HOME/livemig/NAME by default (cli/audit-flags.ts), and the tests' agents — named
 * 127.0.0.1, 127.0.0.2, … in every file — must neither write into the user's ~/.local/state nor
 * share a log (and its lock) with another file's agents, or another test run's. The directory
 * is set before the file's tests start the agents (which inherit the environment) and removed
 * after them; it is made inside the run's state root (state-root.ts), which is removed after the
 * run even where this file's afterAll does not run (every test in the file skipped).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, inject } from 'vitest';

const stateHome = mkdtempSync(join(inject('stateRoot'), 'file-'));
process.env.XDG_STATE_HOME = stateHome;
afterAll(() => rmSync(stateHome, { recursive: true, force: true }));
