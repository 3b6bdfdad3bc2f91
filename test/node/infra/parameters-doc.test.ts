// The edge README's parameter table is the one generated from the shared contract.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  PARAMS_END,
  PARAMS_START,
  parametersTable,
  replaceParametersTable,
} from '../../../infra/parameters-table.ts';
import { GENERATION_PARAMETERS } from '../../../shared/src/protocol/parameters.ts';
import { repoPath } from './paths.ts';

describe('generation parameter table', () => {
  it('in edge/README.md is the one generated from shared/src/protocol/parameters.ts', () => {
    const readme = readFileSync(repoPath('edge/README.md'), 'utf8');
    const start = readme.indexOf(PARAMS_START);
    const end = readme.indexOf(PARAMS_END);
    expect(start, 'edge/README.md has the parameters-table markers').toBeGreaterThan(0);
    const current = readme.slice(start + PARAMS_START.length, end).trim();
    expect(current, 'regenerate: node infra/parameters-table.ts --write edge/README.md').toBe(
      parametersTable(),
    );
  });

  it('lists every parameter of the contract once', () => {
    const table = parametersTable();
    for (const name of Object.keys(GENERATION_PARAMETERS)) {
      expect(table.split('\n').filter((l) => l.startsWith(`| \`${name}\``))).toHaveLength(1);
    }
    expect(() => replaceParametersTable('no markers', 'x')).toThrow('markers not found');
  });
});
