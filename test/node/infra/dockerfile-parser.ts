// A small Dockerfile reader for the infra checks: logical instructions (continuations joined,
// comments kept apart), build stages, the ARGs before the first FROM, and ENV assignments.

export interface Instruction {
  keyword: string;
  args: string;
  /** 1-based line where the instruction starts. */
  line: number;
  /** The comment lines directly above it. */
  comments: string[];
}

export interface Stage {
  name?: string;
  /** The image reference as written (e.g. ${CUDA_IMAGE}). */
  from: string;
  platform?: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARG instructions before the first FROM (the only ones a FROM line may use). */
  globalArgs: Array<{ name: string; value?: string; line: number; comments: string[] }>;
  stages: Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  let comments: string[] = [];
  let current: Instruction | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (current) {
      // Comment lines inside a continuation are dropped by Docker.
      if (!trimmed.startsWith('#')) current.args += ` ${trimmed.replace(/\\$/, '').trim()}`;
      if (!trimmed.endsWith('\\')) {
        current.args = current.args.trim();
        current = undefined;
      }
      continue;
    }
    if (trimmed === '') {
      comments = [];
      continue;
    }
    if (trimmed.startsWith('#')) {
      comments.push(trimmed);
      continue;
    }
    const m = /^(\w+)\s*(.*)$/.exec(trimmed);
    if (!m) throw new Error(`line ${i + 1}: not an instruction: ${raw}`);
    const ins: Instruction = {
      keyword: m[1]!.toUpperCase(),
      args: m[2]!.replace(/\\$/, '').trim(),
      line: i + 1,
      comments,
    };
    comments = [];
    instructions.push(ins);
    if (trimmed.endsWith('\\')) current = ins;
  }

  const out: Dockerfile = { globalArgs: [], stages: [] };
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=(\S+)\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`line ${ins.line}: cannot read FROM ${ins.args}`);
      out.stages.push({
        from: m[2]!,
        ...(m[1] ? { platform: m[1] } : {}),
        ...(m[3] ? { name: m[3] } : {}),
        instructions: [],
      });
    } else if (out.stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new Error(`line ${ins.line}: only ARG may precede the first FROM`);
      const [name, value] = splitAssignment(ins.args);
      out.globalArgs.push({
        name,
        ...(value !== undefined ? { value } : {}),
        line: ins.line,
        comments: ins.comments,
      });
    } else {
      out.stages.at(-1)!.instructions.push(ins);
    }
  }
  return out;
}

function splitAssignment(text: string): [string, string | undefined] {
  const eq = text.indexOf('=');
  return eq < 0 ? [text.trim(), undefined] : [text.slice(0, eq).trim(), text.slice(eq + 1).trim()];
}

/** Names and values an ENV instruction sets (both `ENV A=1 B=2` and the legacy `ENV A 1`). */
export function envAssignments(args: string): Array<[string, string]> {
  if (!/^\S+=/.test(args)) {
    const m = /^(\S+)\s+(.*)$/.exec(args);
    if (!m) throw new Error(`cannot read ENV ${args}`);
    return [[m[1]!, m[2]!]];
  }
  const out: Array<[string, string]> = [];
  const re = /(\w+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g;
  for (const m of args.matchAll(re)) out.push([m[1]!, m[2]!.replace(/^["']|["']$/g, '')]);
  return out;
}

/** Sources of a COPY/ADD from the build context (not `--from=` another stage). */
export function contextSources(ins: Instruction): string[] | undefined {
  if (ins.keyword !== 'COPY' && ins.keyword !== 'ADD') return undefined;
  const words = ins.args.split(/\s+/);
  if (words.some((w) => w.startsWith('--from='))) return undefined;
  const paths = words.filter((w) => !w.startsWith('--'));
  return paths.slice(0, -1);
}
