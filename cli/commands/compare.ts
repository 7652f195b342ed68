/**
 * `livemig compare`: the survey's comparison, measured — a matrix of technique × workload × link
 * (cli/compare/matrix.ts), each cell predicted by the model before it runs and then migrated
 * between real agents (cli/compare/run.ts), written as results.json, results.csv, summary.md,
 * report.html and one SVG per figure (cli/compare/report-html.ts). Progress on stderr; Ctrl-C
 * once finishes the cell in progress and writes what is done, twice exits at once (results.json
 * is already on disk, rewritten after every cell).
 */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { MigrationError, formatDuration } from '@livemig/shared';
import { DEFAULT_MATRIX, parseMatrix, type Matrix } from '../compare/matrix.ts';
import { killAgents } from '../compare/links.ts';
import { runCompare, type Progress } from '../compare/run.ts';
import { writeCompareReport } from '../compare/report-html.ts';
import { predictionErrors, autoScore } from '../compare/scores.ts';
import { flag, positiveIntFlag } from '../options.ts';

interface CompareFlags {
  matrix?: string;
  out: string;
  repeat?: number;
  links?: string[];
}

const linksFlag = flag((text) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

export function registerCompareCommand(program: Command): void {
  program
    .command('compare')
    .description(
      'Run a matrix of technique × workload × link between real agents, predict each migration before it runs, ' +
        'and write results.json, results.csv, summary.md, report.html and SVG figures.',
    )
    .option('--matrix <file>', 'a YAML matrix (schema in the README; default: the built-in matrix, ~10 min with root)')
    .option('--out <dir>', 'where the results go', 'compare-results')
    .option('--repeat <n>', "run every cell this many times (overrides the matrix's repeat:)", positiveIntFlag)
    .option('--links <name>', 'only these links of the matrix, names comma-separated (e.g. loopback,lan)', linksFlag)
    .addHelpText(
      'after',
      '\nThe default matrix: a 128 MiB VM (random pages) idle, writing a 16 MiB hot set at 5k/20k/80k writes/s, ' +
        'and a kv service probed every 2 ms;\ntechniques precopy, postcopy, hybrid, auto:downtime, auto:total-time; ' +
        'links loopback, loopback capped at 62.5 and 25 MB/s,\nand the lab profiles lan and wan (root only: skipped ' +
        'with the reason printed otherwise).\n\nEach cell: boot the VM, measure its dirty rate (1 s, as QEMU calc-dirty-rate), ' +
        "predict every technique from that and\nthe link's idle calibration migration, migrate, destroy the VM. " +
        'A failed cell is recorded with its error; the run goes on.\n\nExamples:\n' +
        '  livemig compare --out results/            # the default matrix\n' +
        '  livemig compare --links loopback --repeat 3\n' +
        '  livemig compare --matrix my-matrix.yaml --out results/\n' +
        '  livemig compare --matrix docs/compare-encodings.yaml   # precopy+compress, +xbzrle, +dedup, +auto-converge, +dirty-limit=RATE\n' +
        '\nCtrl-C finishes the cell in progress and writes the report of what is done; a second Ctrl-C exits at once.' +
        '\nExit status: 0 when every cell completed, 1 when a cell failed or the run was interrupted, 2 bad input.',
    )
    .action(async (flags: CompareFlags) => {
      const matrix = await matrixOf(flags);
      const stop = new AbortController();
      let presses = 0;
      const onSigint = (): void => {
        presses += 1;
        if (presses === 1) {
          process.stderr.write('\ncompare: stopping after the cell in progress (Ctrl-C again to exit now)\n');
          stop.abort('interrupted');
        } else {
          process.stderr.write(`compare: exiting; ${flags.out}/results.json has every cell finished\n`);
          killAgents();
          process.exit(130);
        }
      };
      process.on('SIGINT', onSigint);
      try {
        const results = await runCompare({ matrix, out: flags.out, onProgress: showProgress, signal: stop.signal });
        const files = await writeCompareReport(results, flags.out);
        const errors = predictionErrors(results.cells);
        const auto = autoScore(results.cells);
        const failed = results.cells.filter((c) => c.outcome !== 'completed').length;
        process.stderr.write(
          `compare: ${results.cells.length} cells (${failed} not completed)${results.interrupted ? ', interrupted' : ''}; ` +
            `prediction error (median) total time ${pct(errors.totalTime.medianAbs)}, downtime ${pct(errors.downtime.medianAbs)}; ` +
            `auto within 10 % of the best in ${auto.withinBest} of ${auto.compared} cells, never worse than the worst in ${auto.neverWorse}\n`,
        );
        for (const file of files) process.stdout.write(`${file}\n`);
        if (failed > 0 || results.interrupted) process.exitCode = 1;
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}

function pct(value: number | null): string {
  return value === null ? '—' : `${(value * 100).toFixed(0)} %`;
}

async function matrixOf(flags: CompareFlags): Promise<Matrix> {
  let matrix = DEFAULT_MATRIX;
  if (flags.matrix !== undefined) {
    let text: string;
    try {
      text = await readFile(flags.matrix, 'utf8');
    } catch (error) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `--matrix: cannot read ${flags.matrix}: ${(error as Error).message}`,
      );
    }
    matrix = parseMatrix(text, flags.matrix);
  }
  if (flags.repeat !== undefined) matrix = { ...matrix, repeat: flags.repeat };
  if (flags.links !== undefined) {
    const unknown = flags.links.filter((name) => !matrix.links.some((l) => l.name === name));
    if (unknown.length) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `--links: no link named ${unknown.join(', ')} in the matrix (it has: ${matrix.links.map((l) => l.name).join(', ')})`,
      );
    }
    matrix = { ...matrix, links: matrix.links.filter((l) => flags.links!.includes(l.name)) };
  }
  return matrix;
}

function showProgress(p: Progress): void {
  if (p.note !== undefined) {
    process.stderr.write(`  ${p.note}\n`);
    return;
  }
  if (!p.cell) return;
  const eta = p.etaMs === null ? '' : `, about ${formatDuration(p.etaMs)} left`;
  process.stderr.write(`[${p.done + 1}/${p.total}] ${p.cell.id}${eta}\n`);
}
