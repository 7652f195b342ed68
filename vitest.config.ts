import { defineConfig } from 'vitest/config';

// Two projects: fast unit/property tests, and integration tests that start real processes,
// threads, sockets and (as root) network namespaces. Integration files run one at a time:
// this machine has two cores and the tests measure timing-sensitive things. Each file's agents
// keep their state (audit logs) in a temporary state home of its own (test/setup/state-home.ts).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          setupFiles: ['test/setup/state-home.ts'],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          setupFiles: ['test/setup/state-home.ts'],
          testTimeout: 180_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
