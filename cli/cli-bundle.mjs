// What `livemig` (bin/livemig.mjs) starts: a current bundle of the CLI's module graph
// (shared/src/bundle-build.ts) when there is one, else cli/main.ts through tsx — while a bundle
// is built for the next start. Plain JavaScript: it runs before any TypeScript loader exists.
//
// Why: every agent and CLI process the tests, `livemig demo` and `livemig compare` start goes
// through bin/livemig.mjs, and tsx's loader hooks cost ~1.4 s of wall time and 1.8 s of CPU per
// start for the CLI's ~320 modules; from the bundle, `livemig --help` takes ~0.35 s.
//
// A bundle runs only while every file it was built from is unchanged (bundle-manifest.mjs): a
// changed source starts the CLI through tsx and rebuilds the bundle. LIVEMIG_CLI_BUNDLE=0 turns
// the CLI's bundle off (LIVEMIG_WORKER_BUNDLES=0 does the same for worker threads).
import { bundleRefused, currentBundle } from '../shared/src/bundle-manifest.mjs';

/** The CLI's TypeScript entry (file URL). */
export const CLI_ENTRY = new URL('./main.ts', import.meta.url).href;

/** True when the environment turns the CLI's bundle off (LIVEMIG_CLI_BUNDLE=0). */
export function cliBundleOff(env = process.env) {
  return env.LIVEMIG_CLI_BUNDLE === '0';
}

/**
 * The module to start the CLI from, and whether a bundle should be built for the next start:
 * `{ module: <bundle URL>, build: false }` when a current bundle is on disk; else
 * `{ module: CLI_ENTRY, build }` (build: unless bundles are off or these sources were refused).
 */
export function cliStart(options = {}) {
  if (cliBundleOff(options.env)) return { module: CLI_ENTRY, build: false };
  const bundle = currentBundle(CLI_ENTRY, options);
  if (bundle !== undefined) return { module: bundle, build: false };
  return { module: CLI_ENTRY, build: !bundleRefused(CLI_ENTRY, options) };
}
