/** Regenerate the message table in docs/protocol.md from MESSAGE_SPEC (`npm run docs:protocol`); a unit test keeps them equal. */
import { readFile, writeFile } from 'node:fs/promises';
import { PROTOCOL_DOC, withCurrentTable } from './protocol-docs.ts';

await writeFile(PROTOCOL_DOC, await withCurrentTable(await readFile(PROTOCOL_DOC, 'utf8')));
