#!/usr/bin/env node
// `npx livemig …`: run the TypeScript CLI through tsx (livemig has no build step).
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
