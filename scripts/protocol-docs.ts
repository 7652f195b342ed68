/**
 * The message table of docs/protocol.md for people, rendered from the one source of truth:
 * MESSAGE_SPEC gives each message's number, name, direction, metadata schema and payload rule;
 * the doc comment of its interface in message-types.ts says what it means. The table sits
 * between two marker comments in docs/protocol.md; everything else in that file is written by
 * hand. `npm run docs:protocol` rewrites the table; a unit test fails while it differs from the code.
 */
import { readFile } from 'node:fs/promises';
import prettier from 'prettier';
import ts from 'typescript';
import { formatBytes } from '@livemig/shared';
import { MESSAGE_SPEC, type FieldSchema, type MessageSpec, type ObjectSchema } from '@livemig/shared/protocol';

export const PROTOCOL_DOC = new URL('../docs/protocol.md', import.meta.url);
const MESSAGE_TYPES = new URL('../shared/src/protocol/message-types.ts', import.meta.url);

export const TABLE_BEGIN =
  '<!-- BEGIN GENERATED message table: `npm run docs:protocol` renders it from MESSAGE_SPEC; do not edit by hand -->';
export const TABLE_END = '<!-- END GENERATED message table -->';

const DIRECTION: Record<MessageSpec['direction'], string> = {
  'source→dest': 'S→D',
  'dest→source': 'D→S',
  both: 'both',
};

/** A metadata field type as the table shows it: `uint32`, `precopy \| postcopy`, `{name: string, …}`. */
function fieldType(type: FieldSchema): string {
  if (typeof type === 'string') return type;
  if ('oneOf' in type) return type.oneOf.map((value) => `'${value}'`).join(' \\| ');
  if ('optional' in type) return fieldType(type.optional);
  return `{${fields(type.fields)}}`;
}

function fields(schema: ObjectSchema): string {
  return Object.entries(schema)
    .map(([name, type]) => `${name}${typeof type === 'object' && 'optional' in type ? '?' : ''}: ${fieldType(type)}`)
    .join(', ');
}

function payloadRule(spec: MessageSpec): string {
  const rule = spec.payload;
  if (rule.kind === 'none') return '—';
  if (rule.kind === 'pages') return 'the raw pages (kind 0) in batch order, exactly rawCount × pageSize bytes';
  const limit = rule.maxBytes < Number.MAX_SAFE_INTEGER ? `, ≤ ${formatBytes(rule.maxBytes)}` : '';
  return `\`${rule.field}\` as raw bytes (${rule.optional ? 'optional: none = absent' : 'required'}${limit})`;
}

/** Interface name → its doc comment as one line, from message-types.ts. */
async function messageDocs(): Promise<Map<string, string>> {
  const path = MESSAGE_TYPES.pathname;
  const source = ts.createSourceFile(path, await readFile(path, 'utf8'), ts.ScriptTarget.Latest, true);
  const docs = new Map<string, string>();
  for (const statement of source.statements) {
    if (!ts.isInterfaceDeclaration(statement)) continue;
    const comment = ts
      .getJSDocCommentsAndTags(statement)
      .filter(ts.isJSDoc)
      .map((doc) => ts.getTextOfJSDocComment(doc.comment) ?? '')
      .join(' ');
    docs.set(statement.name.text, comment.replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim());
  }
  return docs;
}

/** The message table, formatted as prettier formats it (so `prettier --check` passes the doc). */
export async function renderMessageTable(): Promise<string> {
  const docs = await messageDocs();
  const lines = ['| type | name | dir | metadata | payload | meaning |', '|---|---|---|---|---|---|'];
  for (const [type, spec] of Object.entries(MESSAGE_SPEC) as Array<[string, MessageSpec]>) {
    const meta = Object.keys(spec.schema).length > 0 ? `\`${fields(spec.schema)}\`` : '—';
    const meaning = docs.get(`${spec.name}Msg`) ?? '';
    lines.push(
      `| ${type} | ${spec.name} | ${DIRECTION[spec.direction]} | ${meta} | ${payloadRule(spec)} | ${meaning} |`,
    );
  }
  const config = await prettier.resolveConfig(PROTOCOL_DOC.pathname);
  return prettier.format(lines.join('\n'), { ...config, parser: 'markdown' });
}

/** The generated part of a protocol doc: the text between the markers. */
export function generatedPart(doc: string): string {
  const begin = doc.indexOf(TABLE_BEGIN);
  const end = doc.indexOf(TABLE_END);
  if (begin < 0 || end < begin) throw new Error(`docs/protocol.md lacks the markers ${TABLE_BEGIN} … ${TABLE_END}`);
  return doc.slice(begin + TABLE_BEGIN.length, end).trim() + '\n';
}

/** `doc` with its generated part replaced by the current table; the hand-written rest untouched. */
export async function withCurrentTable(doc: string): Promise<string> {
  generatedPart(doc); // the markers must be there
  const begin = doc.indexOf(TABLE_BEGIN) + TABLE_BEGIN.length;
  const end = doc.indexOf(TABLE_END);
  return `${doc.slice(0, begin)}\n\n${await renderMessageTable()}\n${doc.slice(end)}`;
}
