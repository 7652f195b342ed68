/**
 * Every test file gets a state home of its own: agents started with --pki keep an audit log in
 * $XDG_STATE_HOME/livemig/NAME by default (cli/audit-flags.ts), and the tests' agents — named
 * 127.0.0.1, 127.0.0.2, … in every file — must neither write into the user's ~/.local/state nor
 * share a log (and its lock) with another file's agents, or another test run's. The directory
 * is set before the file's tests start the agents (which inherit the environment) and removed
 * after them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const stateHome = mkdtempSync(join(tmpdir(), 'livemig-state-'));
process.env.XDG_STATE_HOME = stateHome;
afterAll(() => rmSync(stateHome, { recursive: true, force: true }));
