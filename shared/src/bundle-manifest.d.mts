/** Types of bundle-manifest.mjs (plain JavaScript, so bin/livemig.mjs runs it without a loader). */

/** A file as a bundle was built from it (or the bundle itself, as written). */
export interface BundleFile {
  path: string;
  size: number;
  mtimeMs: number;
}

/** What a bundle was built from; `bundle` null: the graph was refused (see bundle-build.ts). */
export interface BundleManifest {
  entry: string;
  bundle: BundleFile | null;
  inputs: BundleFile[];
}

export interface BundleLocation {
  /** @default defaultBundleDir() */
  dir?: string;
}

/** Where bundles are kept by default: <repository>/node_modules/.cache/livemig-bundles. */
export declare function defaultBundleDir(): string;

/** The name of an entry's bundle and manifest in the bundle directory (its last two path parts, and a hash). */
export declare function bundleKey(entryPath: string): string;

/** The path of the manifest of `entryPath`'s bundle in `dir`. */
export declare function manifestPath(dir: string, entryPath: string): string;

/** The file URL of a current bundle of `entryUrl`, or undefined (none, or a file it was built from changed). */
export declare function currentBundle(entryUrl: string, options?: BundleLocation): string | undefined;

/** True when the last build of `entryUrl` refused its graph and none of its inputs changed since. */
export declare function bundleRefused(entryUrl: string, options?: BundleLocation): boolean;
