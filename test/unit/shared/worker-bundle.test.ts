import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildBundle, currentBundle, workerEntry } from '../../../shared/src/worker-bundle.ts';
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

  it('does not bundle a graph whose module names a script beside itself (it would be looked for beside the bundle)', async () => {
    writeSources(2);
    writeFileSync(
      helper,
      "export const twice = (n: number): number => n * 2;\nexport const script = new URL('./other.mjs', import.meta.url);\n",
    );
    const url = pathToFileURL(entry).href;
    expect(await buildBundle(url, options)).toBeUndefined();
    expect(workerEntry(url, options)).toBe(url);
  });

  it('is off with LIVEMIG_WORKER_BUNDLES=0, and a bundle that cannot be built leaves the entry as it is', async () => {
    writeSources(2);
    const url = pathToFileURL(entry).href;
    await buildBundle(url, options);
    expect(workerEntry(url, { ...options, env: { LIVEMIG_WORKER_BUNDLES: '0' } })).toBe(url);
    writeFileSync(entry, 'this is not TypeScript (');
    expect(await buildBundle(url, options)).toBeUndefined();
    expect(workerEntry(url, options)).toBe(url);
  });
});
