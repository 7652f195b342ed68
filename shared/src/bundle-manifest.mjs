// Whether a bundle of a TypeScript entry (shared/src/bundle-build.ts builds them) is current: its
// manifest names every file it was built from with the size and mtime it had when read, and the
// bundle file's own; a bundle is current when all of them still match. Plain JavaScript on
// purpose: bin/livemig.mjs asks this before any TypeScript loader is registered, to start the CLI
// from its bundle without one.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Where bundles are kept by default: <repository>/node_modules/.cache/livemig-bundles. */
export function defaultBundleDir() {
  return fileURLToPath(new URL('../../node_modules/.cache/livemig-bundles', import.meta.url));
}

/** The name of an entry's bundle and manifest in the bundle directory (its last two path parts, and a hash). */
export function bundleKey(entryPath) {
  const base = entryPath
    .split('/')
    .slice(-2)
    .join('-')
    .replace(/\.[cm]?ts$/, '');
  return `${base}-${createHash('sha256').update(entryPath).digest('hex').slice(0, 12)}`;
}

/** The path of the manifest of `entryPath`'s bundle in `dir`. */
export function manifestPath(dir, entryPath) {
  return join(dir, `${bundleKey(entryPath)}.json`);
}

/** True when every file the manifest lists still has the size and mtime it records. */
function unchanged(files) {
  try {
    return files.every((file) => {
      const stat = statSync(file.path);
      return stat.size === file.size && stat.mtimeMs === file.mtimeMs;
    });
  } catch {
    return false;
  }
}

/** The manifest of `entryUrl`'s bundle when every input it lists is unchanged, else undefined. */
function unchangedManifest(entryUrl, options) {
  const entryPath = fileURLToPath(entryUrl);
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath(options.dir ?? defaultBundleDir(), entryPath), 'utf8'));
  } catch {
    return undefined;
  }
  if (manifest.entry !== entryPath || !unchanged(manifest.inputs)) return undefined;
  return manifest;
}

/**
 * The file URL of a current bundle of `entryUrl` (a TypeScript module's file URL), or undefined
 * when there is none or a file it was built from changed since. Synchronous: a stat per input.
 * The bundle file is checked too: a builder that lost a race to another one's manifest leaves a
 * bundle that manifest does not describe, and it is not run.
 */
export function currentBundle(entryUrl, options = {}) {
  const manifest = unchangedManifest(entryUrl, options);
  if (manifest?.bundle == null || !unchanged([manifest.bundle])) return undefined;
  return pathToFileURL(manifest.bundle.path).href;
}

/**
 * True when the last build of `entryUrl` refused to bundle its graph (bundle-build.ts says why)
 * and none of its inputs changed since: building it again would refuse it again.
 */
export function bundleRefused(entryUrl, options = {}) {
  const manifest = unchangedManifest(entryUrl, options);
  return manifest !== undefined && manifest.bundle === null;
}
