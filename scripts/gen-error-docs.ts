/** Regenerate docs/errors.md from ERROR_CODES (`npm run docs:errors`); a unit test keeps them equal. */
import { writeFile } from 'node:fs/promises';
import { renderErrorDocs } from './error-docs.ts';

await writeFile(new URL('../docs/errors.md', import.meta.url), renderErrorDocs());
