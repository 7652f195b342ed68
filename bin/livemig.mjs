#!/usr/bin/env node
// `npx livemig …`: the CLI from its bundle when a current one is on disk (cli/cli-bundle.mjs),
// else the TypeScript CLI through tsx (livemig has no build step), building the bundle meanwhile
// for the next start. A build that this process does not live to finish is simply not written.
import { CLI_ENTRY, cliStart } from '../cli/cli-bundle.mjs';

const start = cliStart();
if (start.module === CLI_ENTRY) {
  const { register } = await import('tsx/esm/api');
  register();
  if (start.build) {
    void import('../shared/src/bundle-build.ts').then(
      ({ buildBundle }) => buildBundle(CLI_ENTRY),
      () => undefined,
    );
  }
} else {
  // Stack traces name the TypeScript sources (the bundle's source map), as they do through tsx.
  process.setSourceMapsEnabled(true);
}
await import(start.module);
