// The deploy guide's generated parts match the code they come from, and the README points to it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { costSection, extractSection } from '../../../infra/cost-estimate.ts';
import {
  COMPONENTS,
  extractTable,
  replaceTable,
  settingsRows,
  settingsTable,
  TABLE_END,
  TABLE_START,
} from '../../../infra/settings-table.ts';
import { EDGE_SETTINGS, GPU_FUNCTION_SETTINGS, type SettingsSpec } from '../../../shared/src/config.ts';
import { FILES, repoPath } from './paths.ts';

const guide = readFileSync(repoPath(FILES.infraReadme), 'utf8');
const readme = readFileSync(repoPath(FILES.readme), 'utf8');
const names = (table: string) => [...table.matchAll(/^\| `([A-Z0-9_]+)`/gm)].map((m) => m[1]!);

describe('settings table', () => {
  it(`in ${FILES.infraReadme} is the one generated from ${FILES.config}`, () => {
    const current = extractTable(guide);
    expect(current, `${FILES.infraReadme} has the settings-table markers`).toBeDefined();
    const expected = settingsTable();
    const missing = names(expected).filter((n) => !names(current!).includes(n));
    const stale = names(current!).filter((n) => !names(expected).includes(n));
    const hint = `regenerate: node infra/settings-table.ts --write ${FILES.infraReadme}`;
    expect(missing, `settings missing from ${FILES.infraReadme} (${hint})`).toEqual([]);
    expect(stale, `settings in ${FILES.infraReadme} that the code no longer declares (${hint})`).toEqual([]);
    expect(current, `defaults or meanings differ (${hint})`).toBe(expected);
  });

  it('lists every declared setting of every component once, with secrets marked', () => {
    const rows = settingsRows();
    const declared = COMPONENTS.reduce((n, c) => n + Object.keys(c.spec).length, 0);
    expect(rows).toHaveLength(declared);
    const row = (component: string, name: string) =>
      rows.find((r) => r[0] === `\`${name}\`` && r[1] === component);
    const specs: Array<[string, SettingsSpec]> = [
      ['gpu-function', GPU_FUNCTION_SETTINGS],
      ['edge', EDGE_SETTINGS],
    ];
    for (const [component, spec] of specs) {
      for (const [name, s] of Object.entries(spec))
        expect(row(component, name)?.[3], name).toBe(s.secret ? 'yes' : '');
    }
  });

  it('escapes pipes and marks required settings; refuses a document without markers', () => {
    const table = settingsTable([
      { name: 'x', spec: { A: { doc: 'one | two' }, B: { doc: 'b', default: '' } } },
    ]);
    expect(table).toContain('one \\| two');
    expect(table).toContain('**required**');
    expect(table).toContain('(empty)');
    expect(replaceTable(`a\n${TABLE_START}\nold\n${TABLE_END}\nb`, 'new')).toBe(
      `a\n${TABLE_START}\nnew\n${TABLE_END}\nb`,
    );
    expect(() => replaceTable('no markers', 'new')).toThrow('markers not found');
  });
});

describe('cost section', () => {
  it(`in ${FILES.infraReadme} is the one computed from the prices and the service definition`, () => {
    expect(extractSection(guide), 'regenerate: node infra/cost-estimate.ts --write infra/README.md').toBe(
      costSection(),
    );
  });
});

describe(`${FILES.readme}`, () => {
  it('links the deploy guide from a Deploying section', () => {
    expect(readme).toMatch(/## Deploying\n[\s\S]*?\]\(infra\/README\.md\)/);
  });

  it('names only declared settings in its configuration table', () => {
    const section = /## Configuration\n([\s\S]*?)(\n## |$)/.exec(readme)?.[1] ?? '';
    const declared = new Set([...Object.keys(GPU_FUNCTION_SETTINGS), ...Object.keys(EDGE_SETTINGS)]);
    const stale = names(section).filter((n) => !declared.has(n));
    expect(stale, `${FILES.readme} names settings ${FILES.config} does not declare`).toEqual([]);
  });
});
