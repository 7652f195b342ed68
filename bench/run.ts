/**
 * `npm run bench [-- <id> …]`: run the benchmark sections (all by default), write each one's
 * figures to bench/results/<id>.json, and rebuild BENCHMARKS.md from all results files.
 * `npm run bench -- --render`: only rebuild BENCHMARKS.md (results files gathered from runs made
 * elsewhere, e.g. sections run from fresh clones at different times).
 */
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import type { BenchResult, BenchRow, BenchSection } from './harness.ts';

const benchDir = new URL('./', import.meta.url);
const resultsDir = new URL('./results/', import.meta.url);

interface StoredResult extends BenchResult {
  id: string;
  title: string;
  description: string;
  measuredAt: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string };
  durationMs: number;
}

async function loadSections(): Promise<BenchSection[]> {
  const files = (await readdir(benchDir)).filter((f) => f.endsWith('.bench.ts')).sort();
  const sections: BenchSection[] = [];
  for (const file of files) {
    const mod = (await import(new URL(file, benchDir).href)) as { default: BenchSection };
    sections.push(mod.default);
  }
  return sections;
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 0.01) return value.toFixed(2);
  return value.toPrecision(2);
}

function rowLine(row: BenchRow): string {
  const base = row.baseline ? `${formatNumber(row.baseline.value)} ${row.baseline.unit} (${row.baseline.name})` : '';
  const ratio = row.ratio === undefined ? '' : `${row.ratio.toFixed(2)}×`;
  const goal = row.goal ? `${row.goal}${row.met === undefined ? '' : row.met ? ' ✅' : ' ❌'}` : '';
  return `| ${row.name} | ${formatNumber(row.value)} ${row.unit} | ${base} | ${ratio} | ${goal} |`;
}

function renderMarkdown(results: StoredResult[]): string {
  const lines = [
    '# livemig benchmarks',
    '',
    'Written by `npm run bench` (do not edit by hand). Each figure sits next to a baseline measured in the',
    'same run on the same machine, because absolute numbers on a shared machine drift by ±30%.',
    'Raw figures: `bench/results/<section>.json`.',
    '',
  ];
  for (const r of results) {
    lines.push(`## ${r.title}`, '', r.description, '');
    lines.push(
      `Measured ${r.measuredAt} on ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, Node ${r.machine.node}; section took ${(r.durationMs / 1000).toFixed(1)} s.`,
      '',
    );
    lines.push('| figure | value | baseline (same run) | ratio | goal |', '|---|---|---|---|---|');
    for (const row of r.rows) lines.push(rowLine(row));
    if (r.notes?.length) {
      lines.push('');
      for (const note of r.notes) lines.push(`- ${note}`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const render = process.argv.includes('--render');
  const wanted = render ? [] : process.argv.slice(2);
  const sections = await loadSections();
  const unknown = wanted.filter((id) => !sections.some((s) => s.id === id));
  if (unknown.length) {
    process.stderr.write(
      `bench: unknown section(s) ${unknown.join(', ')}; have ${sections.map((s) => s.id).join(', ')}\n`,
    );
    process.exitCode = 2;
    return;
  }
  await mkdir(resultsDir, { recursive: true });
  for (const section of sections) {
    if (render || (wanted.length && !wanted.includes(section.id))) continue;
    process.stderr.write(`bench: running ${section.id} — ${section.title}\n`);
    const started = performance.now();
    const result = await section.run();
    const stored: StoredResult = {
      id: section.id,
      title: section.title,
      description: section.description,
      measuredAt: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.versions.node,
      },
      durationMs: performance.now() - started,
      ...result,
    };
    await writeFile(new URL(`${section.id}.json`, resultsDir), JSON.stringify(stored, null, 2) + '\n');
    for (const row of result.rows) process.stderr.write(`  ${rowLine(row)}\n`);
  }
  const all: StoredResult[] = [];
  for (const section of sections) {
    try {
      all.push(JSON.parse(await readFile(new URL(`${section.id}.json`, resultsDir), 'utf8')) as StoredResult);
    } catch {
      // Not run yet: left out of BENCHMARKS.md until it is.
    }
  }
  await writeFile(new URL('../BENCHMARKS.md', benchDir), renderMarkdown(all));
  process.stderr.write('bench: wrote BENCHMARKS.md\n');
}

await main();
