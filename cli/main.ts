/** `livemig`: the CLI's entry point (program.ts builds it; usage.ts is its one error path). */
import { buildProgram, runCli } from './program.ts';

// `livemig … | head` closes the pipe early: that ends the output, it is not an error to report.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode === undefined ? 0 : Number(process.exitCode));
  throw error;
});

process.exitCode = await runCli(await buildProgram(undefined, process.argv), process.argv);
