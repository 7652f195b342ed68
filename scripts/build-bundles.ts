/**
 * `npm ci` / `npm install` (the root package's `prepare` script): build the CLI's bundle
 * (cli/cli-bundle.mjs) and the worker threads' (agent/src/worker-bundles.ts), so that the first
 * commands and migrations of a fresh checkout do not pay for them. Never fails the install: a CLI
 * or a worker without a bundle runs through tsx.
 */
import { buildBundle, currentBundle } from '@livemig/shared';
import { prebuildWorkerBundles } from '@livemig/agent';
import { CLI_ENTRY, cliBundleOff } from '../cli/cli-bundle.mjs';

const started = performance.now();
const cli = cliBundleOff()
  ? 'off'
  : currentBundle(CLI_ENTRY) !== undefined
    ? 'current'
    : (await buildBundle(CLI_ENTRY)) !== undefined
      ? 'built'
      : 'not bundled (it starts through tsx)';
const bundles = await prebuildWorkerBundles();
const ms = Math.round(performance.now() - started);
console.log(
  `livemig bundles: CLI ${cli}; worker bundles: ${bundles.built.length} built, ${bundles.current.length} current` +
    (bundles.failed.length ? `, ${bundles.failed.length} not bundled (those workers boot through tsx)` : '') +
    ` (${ms} ms)`,
);
