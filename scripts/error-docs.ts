/** The error-code table for people, rendered from the one source of truth in errors.ts. */
import { ERROR_CODES } from '@livemig/shared';

export function renderErrorDocs(): string {
  const lines = [
    '# livemig error codes',
    '',
    'Every error livemig reports carries one of these stable codes (`MigrationError.code`, the `error.code` of',
    'a JSON report, the `code` of a control-channel error, the `code` of a wire `Error` frame). Match on the',
    'code, never on the message. Generated from `shared/src/errors.ts` by `npm run docs:errors`.',
    '',
    '| code | meaning |',
    '|---|---|',
  ];
  for (const [code, meaning] of Object.entries(ERROR_CODES)) lines.push(`| \`${code}\` | ${meaning} |`);
  return lines.join('\n') + '\n';
}
