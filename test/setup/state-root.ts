/**
 * The run's state root (vitest globalSetup, once per project): test/setup/state-home.ts makes
 * each file's state home inside it, and the teardown here removes it after the last file. A
 * file's own afterAll does not run when every test in it is skipped (a namespace suite outside
 * CI), which left an empty livemig-state-* in /tmp per skipped file; this teardown runs anyway.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The directory the files' state homes are made in. */
    stateRoot: string;
  }
}

export default function setup(project: TestProject): () => void {
  const root = mkdtempSync(join(tmpdir(), 'livemig-state-'));
  project.provide('stateRoot', root);
  return () => rmSync(root, { recursive: true, force: true });
}
