/** Types of cli-bundle.mjs (plain JavaScript, so bin/livemig.mjs runs it without a loader). */
import type { BundleLocation } from '../shared/src/bundle-manifest.mjs';

/** The CLI's TypeScript entry (file URL). */
export declare const CLI_ENTRY: string;

/** True when the environment turns the CLI's bundle off (LIVEMIG_CLI_BUNDLE=0). */
export declare function cliBundleOff(env?: NodeJS.ProcessEnv): boolean;

export interface CliStartOptions extends BundleLocation {
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
}

/** The module to start the CLI from (a current bundle, else CLI_ENTRY), and whether to build a bundle. */
export declare function cliStart(options?: CliStartOptions): { module: string; build: boolean };
