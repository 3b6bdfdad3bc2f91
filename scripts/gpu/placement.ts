// Reads node placements out of onnxruntime's verbose session log. With logSeverityLevel 0 a
// session prints, once it has assigned every node (subgraphs included, such as the body of
// the generation graph's Loop), either
//
//   [V:onnxruntime:<logId>, session_state.cc:N VerifyEachNodeIsAssignedToAnEp]  All nodes placed on [CUDAExecutionProvider]. Number of nodes: 215
//
// or, when more than one provider got nodes, per provider
//
//   [...VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2
//   [...VerifyEachNodeIsAssignedToAnEp]   Shape (step/shape_0)
//
// This is the one reliable sign of a silent CPU fallback: the session opens and runs either way.

export interface PlacedNode {
  op: string;
  name: string;
}

export interface ProviderNodes {
  count: number;
  /** Listed only when more than one provider got nodes. */
  nodes: PlacedNode[];
}

export interface Placement {
  /** Provider name (e.g. CUDAExecutionProvider) to its nodes. */
  providers: Record<string, ProviderNodes>;
  total: number;
}

export interface PlacementVerdict {
  ok: boolean;
  expected: string;
  total: number;
  /** Nodes on any other provider, by op type. */
  elsewhere: Record<string, Record<string, number>>;
  /**
   * Memcpy nodes onnxruntime inserted between host and device memory. Every CPU node on the
   * data path brings some; with all nodes on the device they come from kernels that want an
   * input on the host (a Loop's condition, say): reported, not failed.
   */
  memcpy: string[];
  summary: string;
}

const LINE = /\[V:onnxruntime:([^,\]]*),[^\]]*VerifyEachNodeIsAssignedToAnEp\] (.*)$/;
const ALL = /^\s*All nodes placed on \[([^\]]+)\]\. Number of nodes: (\d+)/;
const SOME = /^\s*Node\(s\) placed on \[([^\]]+)\]\. Number of nodes: (\d+)/;
const NODE = /^\s+(\S+) \((.*)\)\s*$/;

/** Placements per log id found in `log` (a session's log id is its logId session option). */
export function parsePlacements(log: string): Map<string, Placement> {
  const byId = new Map<string, Placement>();
  const current = new Map<string, ProviderNodes>();
  for (const raw of log.split('\n')) {
    const m = LINE.exec(raw);
    if (!m) continue;
    const id = m[1] as string;
    const text = m[2] as string;
    if (/^\s*Node placements\s*$/.test(text)) {
      byId.set(id, { providers: {}, total: 0 });
      current.delete(id);
      continue;
    }
    const placement = byId.get(id) ?? { providers: {}, total: 0 };
    byId.set(id, placement);
    const head = ALL.exec(text) ?? SOME.exec(text);
    if (head) {
      const entry: ProviderNodes = { count: Number(head[2]), nodes: [] };
      placement.providers[head[1] as string] = entry;
      placement.total += entry.count;
      current.set(id, entry);
      continue;
    }
    const node = NODE.exec(text);
    if (node) current.get(id)?.nodes.push({ op: node[1] as string, name: node[2] as string });
  }
  return byId;
}

/** Whether every node went to `expected`, and what went elsewhere. */
export function judgePlacement(p: Placement | undefined, expected: string): PlacementVerdict {
  if (!p || p.total === 0) {
    return {
      ok: false,
      expected,
      total: 0,
      elsewhere: {},
      memcpy: [],
      summary: 'no placement in the log (was logSeverityLevel 0 set?)',
    };
  }
  const elsewhere: Record<string, Record<string, number>> = {};
  const memcpy: string[] = [];
  let misplaced = 0;
  for (const [provider, entry] of Object.entries(p.providers)) {
    for (const n of entry.nodes) if (n.op.startsWith('Memcpy')) memcpy.push(`${n.op} (${n.name})`);
    if (provider === expected) continue;
    misplaced += entry.count;
    const ops: Record<string, number> = {};
    for (const n of entry.nodes) ops[n.op] = (ops[n.op] ?? 0) + 1;
    elsewhere[provider] = ops;
  }
  const ok = misplaced === 0;
  const where = Object.entries(elsewhere).map(([prov, ops]) => {
    const listed = Object.entries(ops).map(([op, n]) => `${op} x${n}`);
    return `${prov}: ${listed.length ? listed.join(', ') : 'all'}`;
  });
  const copies = memcpy.length ? `; ${memcpy.length} Memcpy nodes` : '';
  const summary = ok
    ? `all ${p.total} nodes on ${expected}${copies}`
    : `${misplaced} of ${p.total} nodes not on ${expected} (${where.join('; ')})${copies}`;
  return { ok, expected, total: p.total, elsewhere, memcpy, summary };
}

/** onnxruntime's warnings that say the same at the default log level. */
export function fallbackWarnings(log: string): string[] {
  return log
    .split('\n')
    .filter((l) => /not assigned to the preferred execution providers|Memcpy nodes are added/.test(l))
    .map((l) => l.replace(/^.*?\] /, '').trim());
}
