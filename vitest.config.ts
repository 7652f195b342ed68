import { defineConfig } from 'vitest/config';

// Two projects: fast unit/property tests, and integration tests that start real processes,
// threads, sockets and (as root) network namespaces. Each file's agents keep their state (audit
// logs) in a temporary state home of its own (test/setup/state-home.ts, run again before every
// file, isolated or not), inside the run's state root (test/setup/state-root.ts, removed after
// the run even when a file's own cleanup did not run).
//
// Unit files run in vitest's default number of workers (one on this 2-core machine): two were
// not faster here (the unit project at a load average of ~5: 149 s with two, 135 s with one).
//
// Integration files run one at a time — this machine has two cores and the tests measure
// timing-sensitive things — in one worker that keeps the modules it loaded from file to file
// (isolate: false): a fresh worker per file paid ~0.5–0.9 s to start and load the agent, the
// engine and the helpers again, 58 times (14 files: 124 → 83 s at a load average of ~10). The
// files share no state but what they clean up themselves (every process they start is stopped
// after each test; each fleet has its own PKI). They run after the unit files (groupOrder 1).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          globalSetup: ['test/setup/state-root.ts'],
          setupFiles: ['test/setup/state-home.ts'],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/setup/state-root.ts'],
          setupFiles: ['test/setup/state-home.ts'],
          testTimeout: 180_000,
          hookTimeout: 60_000,
          fileParallelism: false,
          isolate: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
