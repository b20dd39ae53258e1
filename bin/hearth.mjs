#!/usr/bin/env node
// The `hearth` command. Sources are TypeScript run through tsx's loader, so
// there is no build step between editing and running.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/main.ts');
