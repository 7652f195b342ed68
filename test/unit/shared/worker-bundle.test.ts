import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildBundle } from '../../../shared/src/bundle-build.ts';
import { bundleRefused, currentBundle } from '../../../shared/src/bundle-manifest.mjs';
import { workerEntry } from '../../../shared/src/worker-bundle.ts';
import { firstMessageThenTerminate } from '../../helpers/worker-answer.ts';

let dir: string;
let entry: string;
let helper: string;
let options: { dir: string; env: NodeJS.ProcessEnv };

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'livemig-bundle-test-'));
  helper = join(dir, 'src', 'twice.ts');
  entry = join(dir, 'src', 'entry.ts');
  // A TypeScript worker of two modules: the bundle must carry both, and run without tsx.
  mkdirSync(join(dir, 'src'));
  options = { dir: join(dir, 'cache'), env: {} };
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function writeSources(factor: number): void {
  writeFileSync(helper, `export const twice = (n: number): number => n * ${factor};\n`);
  writeFileSync(
    entry,
    "import { parentPort, workerData } from 'node:worker_threads';\n" +
      "import { twice } from './twice.ts';\n" +
      'parentPort!.postMessage(twice(workerData.n as number));\n',
  );
}

async function run(url: string, n: number): Promise<unknown> {
  return firstMessageThenTerminate(new Worker(new URL(url), { workerData: { n } }));
}

describe('worker bundles', () => {
  it('gives the TypeScript entry until a bundle is built, then the bundle, which runs as plain JavaScript', async () => {
    writeSources(2);
    const url = pathToFileURL(entry).href;
    expect(currentBundle(url, options)).toBeUndefined();
    expect(workerEntry(url, options)).toBe(url); // and starts a build in the background
    const built = await buildBundle(url, options); // the same build, awaited
    expect(built).toMatch(/\.mjs$/);
    expect(currentBundle(url, options)).toBe(built);
    expect(workerEntry(url, options)).toBe(built);
    // A plain Worker (no tsx in it) runs the bundle: both modules are in it.
    expect(await run(built!, 21)).toBe(42);
  });

  it('forgets a bundle once a file it was built from changed, and rebuilds it with the change', async () => {
    writeSources(2);
    const url = pathToFileURL(entry).href;
    await buildBundle(url, options);
    expect(currentBundle(url, options)).toBeDefined();
    writeSources(30); // the imported module, not the entry
    expect(currentBundle(url, options)).toBeUndefined();
    const rebuilt = await buildBundle(url, options);
    expect(await run(rebuilt!, 2)).toBe(60);
  });

  it("bundles a graph whose module names a file beside itself: import.meta.url is that module's source, not the bundle", async () => {
    writeSources(2);
    writeFileSync(
      entry,
      "import { parentPort } from 'node:worker_threads';\n" +
        "import { script } from './twice.ts';\n" +
        'parentPort!.postMessage([script, import.meta.url]);\n',
    );
    writeFileSync(helper, "export const script = new URL('./other.mjs', import.meta.url).href;\n");
    const url = pathToFileURL(entry).href;
    const built = await buildBundle(url, options);
    expect(built).toMatch(/\.mjs$/);
    expect(await run(built!, 0)).toEqual([pathToFileURL(join(dir, 'src', 'other.mjs')).href, url]);
  });

  it('refuses a graph that uses import.meta otherwise (it would mean the bundle), until its sources change', async () => {
    writeSources(2);
    writeFileSync(
      entry,
      "import { parentPort } from 'node:worker_threads';\nconst meta = import.meta;\nparentPort!.postMessage(meta.url);\n",
    );
    const url = pathToFileURL(entry).href;
    expect(await buildBundle(url, options)).toBeUndefined();
    expect(bundleRefused(url, options)).toBe(true); // workerEntry builds it no more
    expect(workerEntry(url, options)).toBe(url);
    writeSources(3);
    expect(bundleRefused(url, options)).toBe(false);
    expect(await run((await buildBundle(url, options))!, 2)).toBe(6);
  });

  it('does not run a bundle its manifest does not describe (another build replaced it)', async () => {
    writeSources(2);
    const url = pathToFileURL(entry).href;
    const built = await buildBundle(url, options);
    writeFileSync(new URL(built!), '// another build\n');
    expect(currentBundle(url, options)).toBeUndefined();
  });

  it('is off with LIVEMIG_WORKER_BUNDLES=0, and a bundle that cannot be built leaves the entry as it is', async () => {
    writeSources(2);
    const url = pathToFileURL(entry).href;
    await buildBundle(url, options);
    expect(workerEntry(url, { ...options, env: { LIVEMIG_WORKER_BUNDLES: '0' } })).toBe(url);
    writeFileSync(entry, 'this is not TypeScript (');
    expect(await buildBundle(url, options)).toBeUndefined();
    expect(workerEntry(url, options)).toBe(url);
    // workerEntry started another build in the background: awaited (the same build), it fails too,
    // and it is done before afterEach removes the directory (left running, it made its cache again).
    expect(await buildBundle(url, options)).toBeUndefined();
  });
});
